"""Random search over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5, at an equal budget and
worker count."""
from pathlib import Path

from rlpop.experiment import Experiment, RandomSearch
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

experiment = Experiment(
    name="invpend_rs",
    env=pbt.env,
    agent=pbt.agent,
    space=pbt.space,
    strategy=RandomSearch(population=pbt.strategy.population),
    total_steps=pbt.total_steps,
    eval_steps=pbt.eval_steps,
)
