"""FIRE PBT on the deceptive toy at the same worker count as toy_pbt.py (16).

Two sub-populations of 6 members and 4 evaluators (the paper's ratio: evaluators
= 3/4 of the parent sub-population, rounded). P2 keeps its learning rate high
because its fitness is the improvement rate of evaluator curves, and passes its
weights to P1 through evaluator successes. As in the paper, P2's members are
evaluated only after ``min_steps_before_eval`` (5 ready intervals), once P1 has
converged on its hyperparameters, so the evaluators of P2 train with similar
ones. Same budget, Q interval and lr space as toy_pbt.py; the comparison with
PBT and random search is benchmarks/fire_toy.py.
"""
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="toy_fire",
    env=None,
    agent=Agent("toy"),
    space={"lr": LogUniform(0.05, 1.0, factors=(0.5, 0.8, 1.25, 2.0), bounds=(1e-4, 1.5))},
    strategy=FIRE(subpops=2, subpop_size=6, evaluators=4, ready_steps=100, max_eval_steps=1000,
                  min_steps_before_eval=(500,)),
    total_steps=4000,
    eval_steps=20,
    seed=0,
)
