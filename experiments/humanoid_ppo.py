"""One PPO agent on Humanoid-v5 (10M steps; Humanoid needs far more than Hopper).

Larger rollouts (8192 steps per update from 2 env processes x 8 envs), 256x256 networks.
Laptop-sized: --set total_steps=5e5
"""
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="humanoid_ppo",
    env="Humanoid-v5",
    agent=Agent("ppo", hparams={"num_actors": 2, "envs_per_actor": 8, "rollout_steps": 8192,
                                "minibatch_size": 256, "hidden": (256, 256), "lr": 1e-4}),
    strategy=Single(),
    total_steps=10_000_000,
    eval_steps=81_920,
)
