from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="tiny_fire",
    env="Corridor-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 256, "envs_per_actor": 2, "epochs": 2}),
    space={"lr": LogUniform(1e-4, 3e-3), "ent_coef": LogUniform(1e-4, 1e-2, factors=(0.8, 0.95, 1.05, 1.2))},
    strategy=FIRE(subpops=2, subpop_size=2, evaluators=2, ready_steps=512, max_eval_steps=1024,
                  min_steps_before_eval=(256,)),
    total_steps=2048,
    eval_steps=256,
)
