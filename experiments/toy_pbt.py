"""Greedy PBT on the deceptive toy (rlpop.toy.NoisyQuadratic): seconds on a laptop.

PBT sees that a lower learning rate pays off at once and decays it early; the
low-curvature directions are then never cleared and it ends worse than FIRE
(experiments/toy_fire.py: same worker count, budget, Q interval and lr space;
measured in benchmarks/fire_toy.py).
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="toy_pbt",
    env=None,
    agent=Agent("toy"),
    space={"lr": LogUniform(0.05, 1.0, factors=(0.5, 0.8, 1.25, 2.0), bounds=(1e-4, 1.5))},
    strategy=PBT(population=16, ready_steps=100),
    total_steps=4000,
    eval_steps=20,
    seed=0,
)
