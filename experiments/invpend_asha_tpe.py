"""BO+ASHA over experiments/invpend_pbt.py's PPO space on InvertedPendulum-v5: experiments/invpend_asha.py
with new trials proposed by Optuna's TPE (told every ended trial's Q) instead of random draws."""
import dataclasses
from pathlib import Path

from rlpop.run import load_experiment

asha = load_experiment(Path(__file__).with_name("invpend_asha.py"))

# the same experiment as invpend_asha.py, except for these fields
experiment = dataclasses.replace(asha, name="invpend_asha_tpe",
                                 strategy=dataclasses.replace(asha.strategy, search="tpe"))
