"""One PPO agent on rlpop's own Corridor-v0 (seconds): the smallest end-to-end run."""
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="corridor_ppo",
    env="Corridor-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 512, "envs_per_actor": 4}),
    strategy=Single(),
    total_steps=20_000,
    eval_steps=2_048,
)
