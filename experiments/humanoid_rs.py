"""Random search over V-MPO on Humanoid-v5 at the paper's worker count (50), budget and search space
(see experiments/humanoid_fire.py). Laptop-sized:

    python -m rlpop.run experiments/humanoid_rs.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.population=11
"""
import importlib.util
from pathlib import Path

from rlpop.experiment import Agent, Experiment, RandomSearch

_spec = importlib.util.spec_from_file_location("humanoid_fire", Path(__file__).with_name("humanoid_fire.py"))
_fire = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fire)

experiment = Experiment(
    name="humanoid_rs",
    env="Humanoid-v5",
    agent=Agent(_fire.AGENT.learner, dict(_fire.AGENT.hparams)),
    space=_fire.SPACE,
    strategy=RandomSearch(population=50),
    total_steps=_fire.TOTAL_STEPS,
    eval_steps=_fire.EVAL_STEPS,
    backend="ray",
)
