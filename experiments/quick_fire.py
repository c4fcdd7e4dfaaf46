"""The README's quick job: FIRE PBT over PPO on CartPole-v1 -- a few minutes on 2 cores.

Two sub-populations of 4 PPO members and 3 evaluators (the paper's ratio:
evaluators = 3/4 of the parent sub-population) tune the learning rate and the
entropy coefficient while the agents train. Watch P1 (greedy) and P2 (judged
by the improvement rate of evaluator curves) in the live table; the run
directory (runs/quick_fire-*) holds curves, decisions and checkpoints.

Evaluator successes are rare here: in every run measured (benchmarks/results/quick_fire_successes.json: these
settings, 1 seed; and two variants with Q every 1,024 steps, ready 4,096, 4 evaluators, p_stat 0.1, budget
40,960 or 61,440, 3 seeds each) no evaluator succeeded, while the best member reached Q 461-500. An evaluator
is compared with the best P1 member's own curve from the same Q level, and that member was picked for rising
fastest; most evaluators fell behind it (binomial p near 1) or were stopped when their parent or child lost a
PBT round. The settings were therefore left as they were (the paper's p_stat = 0.01).
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
    strategy=FIRE(subpops=2, subpop_size=4, evaluators=3, ready_steps=8_192, max_eval_steps=16_384,
                  min_steps_before_eval=(8_192,)),
    total_steps=40_960,
    eval_steps=2_048,
    seed=0,
)
