"""The README's quick job: FIRE PBT over PPO on CartPole-v1 -- a few minutes on 2 cores.

Two sub-populations of 4 PPO members and 4 evaluators (one per P2 member; the paper's ratio, 3/4 of the parent
sub-population, would be 3) tune the learning rate and the entropy coefficient while the agents train. Watch
P1 (greedy) and P2 (judged by the improvement rate of evaluator curves) in the live table; the run directory
(runs/quick_fire-*) holds curves, decisions and checkpoints.

The FIRE settings are sized so that evaluator successes (a child copying an evaluator's weights) can happen
within this small budget (benchmarks/quick_fire_successes.py counts them over seeds):

- Q every 1,024 steps (two 512-step PPO updates), 40 points per member;
- ready (PBT within each sub-population, and evaluator checks) every 4,096 steps: 10 ready intervals;
- P2 members are evaluated from 8,192 steps on (min_steps_before_eval), once P1 has had two ready intervals;
- max_eval_steps 16,384: an evaluator is checked at T = 4k, 8k, 12k, 16k steps with 4, 8, 12, 16 points;
- p_stat 0.05 (the paper uses 0.01): a success needs the evaluator above its child at k of n overlapping points
  with P(Binomial(n, 1/2) >= k) < 0.05 -- 7 of 8, 10 of 12 or 12 of 16. At 0.01 (7 of 7 or better) and with
  CartPole's noisy Q, a best-of-P1 child, whose own past curve is the bar, was practically never beaten in this
  budget (0 successes in the seeds tried). The paper's setting is a --set away: --set strategy.p_stat=0.01.
"""
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="quick_fire",
    env="CartPole-v1",
    agent=Agent("ppo", hparams={"rollout_steps": 512, "envs_per_actor": 4, "epochs": 4, "minibatch_size": 128,
                                "norm_obs": False, "norm_reward": False}),
    space={
        "lr": LogUniform(1e-4, 3e-3, factors=(0.5, 0.8, 1.25, 2.0)),
        "ent_coef": LogUniform(1e-4, 3e-2, factors=(0.8, 0.95, 1.05, 1.2)),
    },
    strategy=FIRE(subpops=2, subpop_size=4, evaluators=4, ready_steps=4_096, max_eval_steps=8_192,
                  min_steps_before_eval=(8_192,), p_stat=0.1),
    total_steps=40_960,
    eval_steps=1_024,
    seed=0,
)
