"""FIRE PBT over your own env, registered in this file: PPO learns PointReach-v0 (experiments/my_envs.py).

    rlpop run experiments/custom_env_fire.py

The ``register_env`` line below is all it takes: the env class lives in the plain module ``my_envs.py`` beside
this file, and rlpop ships the registration and this folder's import path to every process that builds an env
(spawned env processes, Ray workers with ``--backend ray``). It must come before the Experiment is built,
which checks the env id.

PointReach-v0: move a point to a goal in the unit square (Discrete(5) actions, 50 steps at most; a random
policy scores about -0.4, heading straight for the goal about 1.9). FIRE: two sub-populations of 4 batched PPO
members and 3 evaluators tune lr and the entropy coefficient.

Measured on the 2-core development machine, shared with other jobs (load average 5-7), 2026-12-02: 5 min 10 s
wall in all (16 rounds, 168k env steps at 559 steps/s); the members' mean Q rose from -0.30 (round 1) to 1.65 at
5,120 steps and ~1.8 from 6,144 steps on; best member at the end Q=1.89 (w1, P1); 5 exploits, 9 evaluator
assignments, 6 evaluator stops, 0 successes. On a quiet machine expect it to be several times faster.
"""
from rlpop.envs import register_env

register_env("PointReach-v0", "my_envs:PointReach", max_episode_steps=50)

from rlpop.experiment import FIRE, Agent, Experiment  # noqa: E402 -- after the registration
from rlpop.hparams import LogUniform  # noqa: E402

experiment = Experiment(
    name="custom_env_fire",
    env="PointReach-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 512, "envs_per_actor": 4, "epochs": 4, "minibatch_size": 128,
                                "norm_reward": False}),
    space={
        "lr": LogUniform(1e-4, 3e-3, factors=(0.5, 0.8, 1.25, 2.0)),
        "ent_coef": LogUniform(1e-4, 3e-2, factors=(0.8, 0.95, 1.05, 1.2)),
    },
    strategy=FIRE(subpops=2, subpop_size=4, evaluators=3, ready_steps=4_096, max_eval_steps=8_192,
                  min_steps_before_eval=(4_096,)),
    total_steps=16_384,
    eval_steps=1_024,
    seed=0,
)
