from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="tiny",
    env="Corridor-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 256, "envs_per_actor": 2, "epochs": 2}),
    strategy=Single(),
    total_steps=1024,
    eval_steps=512,
)
