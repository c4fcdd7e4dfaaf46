"""RS+ASHA over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5: 8 slots, each training
20,480 actor steps in all over however many trials; max_t = the whole budget (a trial never cut trains as
long as an RS member), grace_period = 3 ready intervals (1,536 steps), reduction_factor 3, so rungs at
1,536, 4,608 and 13,824 steps. A cut trial's slot starts a new random configuration."""
from pathlib import Path

from rlpop.experiment import ASHA, Experiment
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("invpend_pbt.py"))

experiment = Experiment(
    name="invpend_asha",
    env=pbt.env,
    agent=pbt.agent,
    space=pbt.space,
    strategy=ASHA(population=pbt.strategy.population, max_t=pbt.total_steps, grace_period=1536,
                  reduction_factor=3, search="random"),
    total_steps=pbt.total_steps,
    eval_steps=pbt.eval_steps,
)
