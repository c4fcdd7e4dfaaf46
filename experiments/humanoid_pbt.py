"""PBT over V-MPO on Humanoid-v5 at the paper's worker count (50), budget and search space
(see experiments/humanoid_fire.py). Laptop-sized:

    python -m rlpop.run experiments/humanoid_pbt.py --set total_steps=327680 --set eval_steps=8192 \
        --set strategy.population=11 --set strategy.ready_steps=40960
"""
import importlib.util
from pathlib import Path

from rlpop.experiment import PBT, Agent, Experiment

_spec = importlib.util.spec_from_file_location("humanoid_fire", Path(__file__).with_name("humanoid_fire.py"))
_fire = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fire)

experiment = Experiment(
    name="humanoid_pbt",
    env="Humanoid-v5",
    agent=Agent(_fire.AGENT.learner, dict(_fire.AGENT.hparams)),
    space=_fire.SPACE,
    strategy=PBT(population=50, ready_steps=_fire.READY_STEPS),
    total_steps=_fire.TOTAL_STEPS,
    eval_steps=_fire.EVAL_STEPS,
    backend="ray",
)
