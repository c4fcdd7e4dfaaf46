"""FIRE PBT over V-MPO on Ant-v5: the paper's other RL task (Dalibard & Jaderberg 2020, section 4.2, Ant-v1).

The same configuration as experiments/humanoid_fire.py, on Ant: 50 workers = two sub-populations of 18
members + 14 evaluators; lr log-uniform 1e-5..1e-3 perturbed x[0.5, 0.8, 1.25, 2.0], eps_eta log-uniform
5e-3..2e-2 perturbed x[0.8, 0.95, 1.05, 1.2]; eps_alpha_mu 7.5e-3 and eps_alpha_sigma 1e-5 fixed; ready and
evaluator checks every 6e7 actor steps, P2 min_steps_before_eval 1e9, max_eval_steps 6e8, 6e9 actor steps per
member; the same V-MPO agent settings (humanoid_fire.AGENT).

Envs: rlpop has no EnvPool match for Ant-v5 (EnvPool's Ant observations differ from gymnasium's v5, so
agents/envbank.py does not use it), so this experiment steps **gymnasium** Ant-v5 envs, in
``num_actors`` spawned env processes -- slower per step than the EnvPool-backed Humanoid and Hopper runs.

    rlpop run experiments/ant_fire.py --dry-run

Laptop-sized (11 workers), as humanoid_fire.py:

    rlpop run experiments/ant_fire.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.subpop_size=4 --set strategy.evaluators=3 --set strategy.ready_steps=40960 \
        --set strategy.max_eval_steps=163840 --set "strategy.min_steps_before_eval=(81920,)"

Same workers, budget and search space as experiments/ant_pbt.py and ant_rs.py.
"""
import dataclasses
from pathlib import Path

from rlpop.run import load_experiment

humanoid = load_experiment(Path(__file__).with_name("humanoid_fire.py"))

# the same experiment, except for these fields
experiment = dataclasses.replace(humanoid, name="ant_fire", env="Ant-v5")
