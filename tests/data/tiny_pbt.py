from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform, Uniform

experiment = Experiment(
    name="tiny_pbt",
    env="Corridor-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 256, "envs_per_actor": 2, "epochs": 2}),
    space={"lr": LogUniform(1e-4, 3e-3), "clip": Uniform(0.1, 0.3, factors=(0.8, 1.25))},
    strategy=PBT(population=4, ready_steps=512),
    total_steps=2048,
    eval_steps=256,
)
