"""The issue-26 study's random search over V-MPO: experiments/study_vmpo_pbt.py's learner and space, no evolution."""
import dataclasses
from pathlib import Path

from rlpop.experiment import RandomSearch
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("study_vmpo_pbt.py"))

experiment = dataclasses.replace(pbt, name="study_vmpo_rs", strategy=RandomSearch(population=pbt.strategy.population))
