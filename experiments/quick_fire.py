"""The README's quick job: FIRE PBT over PPO on Pendulum-v1 -- about 2.5 minutes on 2 cores.

Two sub-populations of 4 PPO members and 3 evaluators (the paper's ratio: evaluators = 3/4 of the parent
sub-population) tune the learning rate and the entropy coefficient while the agents learn to swing the pendulum
up (Q, the mean episode return, rises from about -1,200 to about -200 in this budget). Watch P1 (greedy) and P2
(judged by the improvement rate of evaluator curves) in the live table; an evaluator success ("SUCCESS: target
w.. copies its weights") is FIRE handing P2's weights to P1. The run directory (runs/quick_fire-*) holds curves,
decisions and checkpoints; the last lines print the plot command (black circles in hparams.png mark successes).

Scaled from the paper's RL settings (section 4.2) so that evaluators get a fair test in 81,920 actor steps per
worker: Q every 512 steps and ready every 8,192, so 16 Q points per ready interval (the paper: 10); ready = 1/10
of the budget (the paper: 1/100, which would be one rollout here); evaluators judged for up to 4 ready intervals
(max_eval_steps 32,768; the paper: 10) from 8,192 steps on (the paper's P2 waits 1/6 of the budget); p_stat 0.01
as the paper. Measured (benchmarks/quick_fire_successes.py, benchmarks/results/quick_fire_successes.json): an
evaluator success in 6 of 9 seeds (7 in all; seed 0, the default, has one), ~2.3-2.8 min a run. Most evaluators
are released when their parent or their target loses a PBT round first. CartPole-v1 (this job until 2026-12-02)
showed a success in 2 of 9 seeds: its returns cap at 500, ties at the cap never count as "above", and P2 lagged P1.
"""
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="quick_fire",
    env="Pendulum-v1",
    # gamma 0.95 (PPO's default is 0.99): a shorter horizon for Pendulum's dense per-step cost; fixed, not searched
    agent=Agent("ppo", hparams={"rollout_steps": 512, "envs_per_actor": 4, "epochs": 5, "minibatch_size": 128,
                                "gamma": 0.95}),
    space={
        "lr": LogUniform(1e-4, 3e-3, factors=(0.5, 0.8, 1.25, 2.0)),
        "ent_coef": LogUniform(1e-4, 3e-2, factors=(0.8, 0.95, 1.05, 1.2)),
    },
    strategy=FIRE(subpops=2, subpop_size=4, evaluators=3, ready_steps=8_192, max_eval_steps=32_768,
                  min_steps_before_eval=(8_192,)),
    total_steps=81_920,
    eval_steps=512,
    seed=0,
)
