"""FIRE PBT over PPO on InvertedPendulum-v5: 8 workers = two sub-populations of 3 members + 2 evaluators.

experiments/invpend_pbt.py's space, PPO settings and budget per worker (20,480 actor steps), with the paper's
ratios where a 512-step rollout allows (section 4.2): ready / evaluator checks every rollout (512 steps =
1/40; the paper 1/100), max_eval_steps 10 ready intervals (5,120 = 1/4; paper 1/10), P2's
min_steps_before_eval 1/6 rounded up to rollouts (3,584).
"""
import dataclasses
from pathlib import Path

from rlpop.experiment import FIRE
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

# the same experiment as invpend_pbt.py, except for these fields
experiment = dataclasses.replace(pbt, name="invpend_fire",
                                 strategy=FIRE(subpops=2, subpop_size=3, evaluators=2, ready_steps=512,
                                               max_eval_steps=5120, min_steps_before_eval=(3584,), p_stat=0.01))
