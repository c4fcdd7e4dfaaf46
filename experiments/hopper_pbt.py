"""PBT over PPO on Hopper-v5: 8 members, 1M actor steps each, ready every 100k steps.

Searched, with the usual PPO ranges and per-hparam perturbation factors: lr (log 1e-5..1e-3),
clip range (0.1..0.5), GAE lambda (0.9..1.0), epochs and minibatch size (integers that can grow).
Same budget and worker count as experiments/hopper_rs.py.
Laptop-sized: --set total_steps=2e5 --set strategy.ready_steps=20480 --set eval_steps=10240
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import Choice, IntUniform, LogUniform, Uniform

SPACE = {
    "lr": LogUniform(1e-5, 1e-3, factors=(0.5, 0.8, 1.25, 2.0)),
    "clip": Uniform(0.1, 0.5, factors=(0.8, 0.9, 1.1, 1.25), bounds=(0.02, 0.8)),
    "gae_lambda": Uniform(0.9, 1.0, factors=(0.98, 0.99, 1.01, 1.02), bounds=(0.8, 1.0)),
    "epochs": IntUniform(3, 15, factors=(0.8, 1.25), bounds=(1, 30)),
    "minibatch_size": Choice([32, 64, 128, 256, 512]),
}

experiment = Experiment(
    name="hopper_pbt",
    env="Hopper-v5",
    agent=Agent("ppo", hparams={"num_actors": 0, "envs_per_actor": 4, "rollout_steps": 2048}),
    space=SPACE,
    strategy=PBT(population=8, ready_steps=102_400),
    total_steps=1_024_000,
    eval_steps=20_480,
)
