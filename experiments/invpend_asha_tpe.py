"""BO+ASHA over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5: experiments/invpend_asha.py
with new trials proposed by Optuna's TPE (told every ended trial's Q) instead of random draws."""
from pathlib import Path

from rlpop.experiment import ASHA, Experiment
from rlpop.run import load_experiment

asha = load_experiment(Path(__file__).with_name("invpend_asha.py"))
s = asha.strategy

experiment = Experiment(
    name="invpend_asha_tpe",
    env=asha.env,
    agent=asha.agent,
    space=asha.space,
    strategy=ASHA(population=s.population, max_t=s.max_t, grace_period=s.grace_period,
                  reduction_factor=s.reduction_factor, search="tpe"),
    total_steps=asha.total_steps,
    eval_steps=asha.eval_steps,
)
