"""Issue 29's width study, config fixed64 (experiments/width_space.py; run by benchmarks/width_study.py)."""
from width_space import width_experiment

experiment = width_experiment("fixed64")
