"""PBT over a learner of your own: CleanRL-style PPO (experiments/cleanrl_learner.py) on CartPole-v1.

    python -m rlpop.run experiments/cleanrl_pbt.py

``Agent("cleanrl_learner:CleanPPO")`` names the class in the module beside this file (rlpop.run puts this
folder on the import path of every process, Ray workers included). A learner without a batched implementation
runs one member per worker (the per-member engine). Four members tune lr, the clip range and the entropy
coefficient; every 8,192 steps the worst member copies the best one's weights, Adam state and hparams, then
perturbs them. How to write such a learner: docs/learners.md. FIRE PBT over the same learner:
experiments/cleanrl_fire.py.
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform, Uniform

experiment = Experiment(
    name="cleanrl_pbt",
    env="CartPole-v1",
    agent=Agent("cleanrl_learner:CleanPPO", hparams={"num_envs": 4, "num_steps": 128}),
    space={
        "lr": LogUniform(1e-4, 3e-3, factors=(0.5, 0.8, 1.25, 2.0)),
        "clip": Uniform(0.1, 0.3, factors=(0.8, 1.25), bounds=(0.05, 0.5)),
        "ent_coef": LogUniform(1e-4, 3e-2, factors=(0.8, 0.95, 1.05, 1.2)),
    },
    strategy=PBT(population=4, ready_steps=8_192),
    total_steps=32_768,
    eval_steps=2_048,
    seed=0,
)
