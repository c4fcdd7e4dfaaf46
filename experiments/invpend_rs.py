"""Random search over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5, at an equal budget and
worker count."""
import dataclasses
from pathlib import Path

from rlpop.experiment import RandomSearch
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

# the same experiment as invpend_pbt.py, except for these fields
experiment = dataclasses.replace(pbt, name="invpend_rs",
                                 strategy=RandomSearch(population=pbt.strategy.population))
