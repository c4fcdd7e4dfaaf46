"""PBT over V-MPO on Ant-v5 at the paper's worker count (50), budget and search space
(see experiments/ant_fire.py; steps gymnasium Ant-v5 envs: rlpop has no EnvPool match for Ant-v5).
Laptop-sized:

    rlpop run experiments/ant_pbt.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.population=11 --set strategy.ready_steps=40960
"""
import dataclasses
from pathlib import Path

from rlpop.experiment import PBT
from rlpop.run import load_experiment

fire = load_experiment(Path(__file__).with_name("ant_fire.py"))

# the same experiment, except for these fields
experiment = dataclasses.replace(fire, name="ant_pbt",
                                 strategy=PBT(population=50, ready_steps=fire.strategy.ready_steps))
