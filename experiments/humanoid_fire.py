"""FIRE PBT over V-MPO on Humanoid-v5: the paper's RL configuration (Dalibard & Jaderberg 2020, section 4.2).

50 workers: two sub-populations of 18 members and 14 evaluators (3/4 of the parent sub-population).
Searched: lr log-uniform 1e-5..1e-3 perturbed x[0.5, 0.8, 1.25, 2.0]; eps_eta log-uniform 5e-3..2e-2
perturbed x[0.8, 0.95, 1.05, 1.2]. eps_alpha_mu = 7.5e-3 and eps_alpha_sigma = 1e-5 are fixed (paper).
Ready and evaluator checks every 6e7 actor steps; P2 min_steps_before_eval 1e9; max_eval_steps 6e8;
6e9 actor steps per member. That is datacenter-sized (the paper: 160k CPU-days), but the command as written
starts on a laptop: the batched engine holds the 50 V-MPO workers in one shard process (measured on 2 cores:
training within 50 s, 5.9 GB for the whole process tree, ~2,500 env steps/s, and an honest ETA of ~2.8 years,
with the earlier 8192-step rollouts and 2 epochs; with V-MPO's 640-step batches (16 x 40, before the unroll became 39) --dry-run estimated
~3.0 GB, against 9.1 GB for the earlier settings in the same session at load ~6).
See the plan, with a measured time and memory estimate, with

    rlpop run experiments/humanoid_fire.py --dry-run

and scale it to a laptop (11 workers; --dry-run estimated ~30 minutes on 2 cores with the earlier settings,
~2 h at load ~6 with the current ones, 495 against 364 steps/s for the earlier ones then) with

    rlpop run experiments/humanoid_fire.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.subpop_size=4 --set strategy.evaluators=3 --set strategy.ready_steps=40960 \
        --set strategy.max_eval_steps=163840 --set "strategy.min_steps_before_eval=(81920,)"

Same workers, budget and search space as experiments/humanoid_pbt.py and humanoid_rs.py.
"""
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform

SPACE = {
    "lr": LogUniform(1e-5, 1e-3, factors=(0.5, 0.8, 1.25, 2.0)),
    "eps_eta": LogUniform(5e-3, 2e-2, factors=(0.8, 0.95, 1.05, 1.2)),
}
# the V-MPO settings of experiments/humanoid_vmpo.py (lr and eps_eta are searched here)
# (V-MPO's Gym settings: one gradient step per 624-step batch of 16 x 39-step unrolls, target period 100,
# PopArt, raw rewards; 256x256 networks are rlpop's choice)
AGENT = Agent("vmpo", hparams={"eps_alpha_mu": 7.5e-3, "eps_alpha_sigma": 1e-5, "hidden": (256, 256),
                               "num_actors": 2, "envs_per_actor": 8, "rollout_steps": 624,
                               "minibatch_size": 624, "target_period": 100, "n_step": None, "epochs": 1,
                               "popart": True, "norm_reward": False})
TOTAL_STEPS = 6_000_000_000
EVAL_STEPS = 6_000_000
READY_STEPS = 60_000_000

experiment = Experiment(
    name="humanoid_fire",
    env="Humanoid-v5",
    agent=AGENT,
    space=SPACE,
    strategy=FIRE(subpops=2, subpop_size=18, evaluators=14, ready_steps=READY_STEPS,
                  max_eval_steps=600_000_000, min_steps_before_eval=(1_000_000_000,), p_stat=0.01),
    total_steps=TOTAL_STEPS,
    eval_steps=EVAL_STEPS,
    backend="ray",
)
