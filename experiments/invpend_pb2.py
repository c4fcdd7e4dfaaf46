"""PB2 over PPO on InvertedPendulum-v5: experiments/invpend_pbt.py with PB2's GP-bandit explore (same fields,
space, budget and workers)."""
import dataclasses
from pathlib import Path

from rlpop.experiment import PB2
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

# the same experiment as invpend_pbt.py, except for these fields
experiment = dataclasses.replace(pbt, name="invpend_pb2",
                                 strategy=PB2(population=pbt.strategy.population, ready_steps=pbt.strategy.ready_steps))
