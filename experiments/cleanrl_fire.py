"""FIRE PBT over a learner of your own: CleanRL-style PPO (experiments/cleanrl_learner.py) on CartPole-v1.

    rlpop run experiments/cleanrl_fire.py

Two sub-populations of 4 members and 3 evaluators (the paper's ratio), as in experiments/quick_fire.py, but
every worker is a ``cleanrl_learner:CleanPPO`` (one learner per worker, the per-member engine). Exploits,
evaluator assignments, successes and stops all go through the learner protocol (get_state / set_state /
set_hparams): see docs/learners.md. PBT over the same learner: experiments/cleanrl_pbt.py.

Measured on the 2-core development machine, shared with other jobs (load average 5-7), 2026-12-02: 3 min 26 s
wall in all (16 rounds, 168k env steps at 888 steps/s); the 8 members' mean Q (CartPole return) rose from 22
(round 1) to 149 at 8,192 steps and ~170-210 at the end; a P1 member first reached 500 at 12,288 steps; best
member at the end w2 (P1) Q=401; 5 exploits, 8 evaluator assignments, 5 evaluator stops, 0 successes.
"""
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform, Uniform

experiment = Experiment(
    name="cleanrl_fire",
    env="CartPole-v1",
    agent=Agent("cleanrl_learner:CleanPPO", hparams={"num_envs": 4, "num_steps": 128}),
    space={
        "lr": LogUniform(1e-4, 3e-3, factors=(0.5, 0.8, 1.25, 2.0)),
        "clip": Uniform(0.1, 0.3, factors=(0.8, 1.25), bounds=(0.05, 0.5)),
        "ent_coef": LogUniform(1e-4, 3e-2, factors=(0.8, 0.95, 1.05, 1.2)),
    },
    strategy=FIRE(subpops=2, subpop_size=4, evaluators=3, ready_steps=4_096, max_eval_steps=8_192,
                  min_steps_before_eval=(4_096,)),
    total_steps=16_384,
    eval_steps=1_024,
    seed=0,
)
