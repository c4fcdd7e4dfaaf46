"""PBT over a learner of your own: CleanRL-style PPO (experiments/cleanrl_learner.py) on CartPole-v1.

    rlpop run experiments/cleanrl_pbt.py

``Agent("cleanrl_learner:CleanPPO")`` names the class in the module beside this file (rlpop.run puts this
folder on the import path of every process, Ray workers included). A learner without a batched implementation
runs one member per worker (the per-member engine). Four members tune lr, the clip range and the entropy
coefficient; every 8,192 steps the worst member copies the best one's weights, Adam state and hparams, then
perturbs them. How to write such a learner: docs/learners.md. FIRE PBT over the same learner:
experiments/cleanrl_fire.py.

Measured on the 2-core development machine, shared with other jobs (load average 5-7), 2026-12-02: 4 min 2 s
wall in all (16 rounds, 131k env steps at 577 steps/s); the members' mean Q (CartPole return) rose from 27
(round 1) to 163 at 8,192 steps and 390 at 16,384, a member first reached the maximum 500 at 16,384 steps; the
last round dipped (mean 223, best member w1 Q=298 at 32,768 steps: PPO on CartPole is unstable at high lr); 3
exploits.
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
