"""Random search over the same PPO space as experiments/hopper_pbt.py, at an equal budget and worker count."""
import importlib.util
from pathlib import Path

from rlpop.experiment import Agent, Experiment, RandomSearch

_spec = importlib.util.spec_from_file_location("hopper_pbt", Path(__file__).with_name("hopper_pbt.py"))
_pbt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pbt)

experiment = Experiment(
    name="hopper_rs",
    env="Hopper-v5",
    agent=Agent("ppo", hparams=dict(_pbt.experiment.agent.hparams)),
    space=_pbt.SPACE,
    strategy=RandomSearch(population=_pbt.experiment.strategy.population),
    total_steps=_pbt.experiment.total_steps,
    eval_steps=_pbt.experiment.eval_steps,
)
