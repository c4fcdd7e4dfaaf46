"""The issue-26 study's FIRE PBT over PPO (benchmarks/study.py): 2 sub-populations, evaluators 3/4 of the parent
sub-population (the paper's 18 + 18 + 14 scaled to 8 + 8 + 6).

Learner and search space: experiments/study_space.py, shared by every method. The study runner --sets env, budget,
intervals and worker counts from its frozen settings (benchmarks/results/study_<env>.json).
"""
from rlpop.experiment import FIRE, Experiment
from study_space import AGENTS, ENV, READY, SPACES, TOTAL_STEPS

experiment = Experiment(
    name="study_ppo_fire",
    env=ENV,
    agent=AGENTS["ppo"],
    space=SPACES["ppo"],
    strategy=FIRE(subpops=2, subpop_size=8, evaluators=6, ready_steps=READY, max_eval_steps=10 * READY,
                  min_steps_before_eval=(TOTAL_STEPS // 6,), p_stat=0.01),
    total_steps=TOTAL_STEPS,
    eval_steps=READY,
)
