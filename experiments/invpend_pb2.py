"""PB2 over PPO on InvertedPendulum-v5: experiments/invpend_pbt.py with PB2's GP-bandit explore (same fields,
space, budget and workers)."""
from pathlib import Path

from rlpop.experiment import PB2, Experiment
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

experiment = Experiment(
    name="invpend_pb2",
    env=pbt.env,
    agent=pbt.agent,
    space=pbt.space,
    strategy=PB2(population=pbt.strategy.population, ready_steps=pbt.strategy.ready_steps),
    total_steps=pbt.total_steps,
    eval_steps=pbt.eval_steps,
)
