"""RS+ASHA over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5: 8 slots, each training
20,480 actor steps in all over however many trials; max_t = the whole budget (a trial never cut trains as
long as an RS member), grace_period = 3 ready intervals (1,536 steps), reduction_factor 3, so rungs at
1,536, 4,608 and 13,824 steps. A cut trial's slot starts a new random configuration."""
import dataclasses
from pathlib import Path

from rlpop.experiment import ASHA
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

# the same experiment as invpend_pbt.py, except for these fields
experiment = dataclasses.replace(pbt, name="invpend_asha",
                                 strategy=ASHA(population=pbt.strategy.population, max_t=pbt.total_steps,
                                               grace_period=1536, reduction_factor=3, search="random"))
