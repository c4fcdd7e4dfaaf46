"""One V-MPO agent on Humanoid-v5 (10M steps), the learner of the FIRE PBT paper's Gym runs.

eps_alpha_mu = 7.5e-3 and eps_alpha_sigma = 1e-5 as the FIRE PBT paper fixes them; lr and
eps_eta at the geometric middle of the paper's search ranges (1e-5..1e-3 and 5e-3..2e-2).
Actors act with a target network refreshed every 100 learner updates (the V-MPO paper's
period); each 8192-step rollout (2 actor processes x 8 envs x 512 steps) gives 16 updates
of 512 samples, with 64-step bootstrapped targets. PopArt normalises the value targets.
These settings have not been tuned on Humanoid here: the README's benchmark numbers are
the measured ones.
Laptop-sized: --set total_steps=5e5
"""
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="humanoid_vmpo",
    env="Humanoid-v5",
    agent=Agent("vmpo", hparams={
        "num_actors": 2, "envs_per_actor": 8, "rollout_steps": 8192, "minibatch_size": 512,
        "hidden": (256, 256), "lr": 1e-4, "eps_eta": 1e-2, "target_period": 100, "n_step": 64,
        "popart": True,
    }),
    strategy=Single(),
    total_steps=10_000_000,
    eval_steps=81_920,
)
