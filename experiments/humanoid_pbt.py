"""PBT over V-MPO on Humanoid-v5 at the paper's worker count (50), budget and search space
(see experiments/humanoid_fire.py). Laptop-sized:

    rlpop run experiments/humanoid_pbt.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.population=11 --set strategy.ready_steps=40960
"""
import dataclasses
from pathlib import Path

from rlpop.experiment import PBT
from rlpop.run import load_experiment

fire = load_experiment(Path(__file__).with_name("humanoid_fire.py"))

# the same experiment, except for these fields
experiment = dataclasses.replace(fire, name="humanoid_pbt",
                                 strategy=PBT(population=50, ready_steps=fire.strategy.ready_steps))
