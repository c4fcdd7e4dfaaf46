"""The issue-26 study's random search over PPO (benchmarks/study.py).

Learner and search space: experiments/study_space.py, shared by every method. The study runner --sets env, budget,
intervals and worker counts from its frozen settings (benchmarks/results/study_<env>.json).
"""
from rlpop.experiment import RandomSearch, Experiment
from study_space import AGENTS, ENV, READY, SPACES, TOTAL_STEPS

experiment = Experiment(
    name="study_ppo_rs",
    env=ENV,
    agent=AGENTS["ppo"],
    space=SPACES["ppo"],
    strategy=RandomSearch(population=22),
    total_steps=TOTAL_STEPS,
    eval_steps=READY,
)
