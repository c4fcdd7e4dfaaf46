"""One V-MPO agent on Humanoid-v5 (10M steps), the learner of the FIRE PBT paper's Gym runs.

eps_alpha_mu = 7.5e-3 and eps_alpha_sigma = 1e-5 as the FIRE PBT paper fixes them; lr and
eps_eta at the geometric middle of the paper's search ranges (1e-5..1e-3 and 5e-3..2e-2),
which are V-MPO's Gym values (1e-4, 0.01). The rest are V-MPO's Gym settings too (rlpop's
VMPO defaults): actors act with a target network refreshed every 100 learner updates; each
624-step batch (2 env processes x 8 envs x 39-step unrolls, targets bootstrapped from each
unroll's end) gives one gradient step, no reuse; PopArt normalises the value targets and
rewards are not normalised. The 256x256 networks are rlpop's choice (V-MPO does not state
its Gym network). These settings have not been tuned on Humanoid here.
Laptop-sized: --set total_steps=5e5
"""
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(
    name="humanoid_vmpo",
    env="Humanoid-v5",
    agent=Agent("vmpo", hparams={
        "num_actors": 2, "envs_per_actor": 8, "rollout_steps": 624, "minibatch_size": 624,
        "hidden": (256, 256), "lr": 1e-4, "eps_eta": 1e-2, "target_period": 100, "n_step": None,
        "epochs": 1, "popart": True, "norm_reward": False,
    }),
    strategy=Single(),
    total_steps=10_000_000,
    eval_steps=81_920,
)
