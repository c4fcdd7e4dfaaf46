"""Random search over V-MPO on Ant-v5 at the paper's worker count (50), budget and search space
(see experiments/ant_fire.py; steps gymnasium Ant-v5 envs: rlpop has no EnvPool match for Ant-v5).
Laptop-sized:

    python -m rlpop.run experiments/ant_rs.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.population=11
"""
from pathlib import Path

from rlpop.experiment import RandomSearch, Experiment
from rlpop.run import load_experiment

fire = load_experiment(Path(__file__).with_name("ant_fire.py"))

experiment = Experiment(
    name="ant_rs",
    env=fire.env,
    agent=fire.agent,
    space=fire.space,
    strategy=RandomSearch(population=50),
    total_steps=fire.total_steps,
    eval_steps=fire.eval_steps,
    backend=fire.backend,
)
