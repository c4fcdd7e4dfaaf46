"""The issue-26 study's PBT over PPO (benchmarks/study.py); what it runs is
experiments/study_space.py's study_experiment, shared by every method. The study runner --sets env, budget,
intervals and worker counts from its frozen settings (benchmarks/results/study_<env>.json)."""
from study_space import study_experiment

experiment = study_experiment("ppo", "pbt")
