"""One PPO agent on Hopper-v5 with CleanRL's continuous-control settings (1M steps).

2048 env steps per update collected by 2 env processes x 4 envs, 10 epochs,
minibatch 64, lr 3e-4, GAE 0.95, clip 0.2, observation and reward normalisation.
Laptop-sized: --set total_steps=2e5
"""
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="hopper_ppo",
    env="Hopper-v5",
    agent=Agent("ppo", hparams={"num_actors": 2, "envs_per_actor": 4, "rollout_steps": 2048}),
    strategy=Single(),
    total_steps=1_000_000,
    eval_steps=20_480,
)
