"""The issue-26 study's FIRE PBT over V-MPO: experiments/study_vmpo_pbt.py's learner, space and within-sub-population
PBT settings; 2 sub-populations and evaluators 3/4 of the parent sub-population (the paper's 18 + 18 + 14 scaled:
8 + 8 + 6 = 22 workers). The study runner --sets the layout and FIRE's intervals from its frozen settings."""
import dataclasses
from pathlib import Path

from rlpop.experiment import FIRE
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("study_vmpo_pbt.py"))

experiment = dataclasses.replace(
    pbt, name="study_vmpo_fire",
    strategy=FIRE(subpops=2, subpop_size=8, evaluators=6, ready_steps=pbt.strategy.ready_steps,
                  max_eval_steps=61_440, min_steps_before_eval=(102_400,), p_stat=0.01))
