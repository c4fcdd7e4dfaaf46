"""Issue 29's width study (benchmarks/width_study.py): PBT over PPO on HalfCheetah-v5 with the layer widths fixed
or searched, everything else shared. The three experiment files (width_pbt_<config>.py) import it by name (this
folder is on the import path when a run starts and when it resumes).

- ``fixed64``: hidden (64, 64), rlpop's default (CleanRL's MuJoCo network);
- ``fixed256``: hidden (256, 256), the searched runs' maximum, fixed;
- ``searched``: hidden (256, 256) as the maximum, ``width_0`` and ``width_1`` drawn log-uniformly from 16..256
  and explored with factors [0.5, 0.8, 1.25, 2.0] (the paper's learning-rate factors), kept within 8..256.

Shared: 8 PBT members; issue 26's PPO settings and its lr/clip space (experiments/study_space.py); 256k actor steps
per member, ready (and Q) every 12,288 steps (six 2,048-step rollouts).
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import IntUniform

from study_space import PPO_AGENT, PPO_SPACE

CONFIGS = ("fixed64", "fixed256", "searched")
MEMBERS, TOTAL_STEPS, READY = 8, 256_000, 12_288
WIDTH = IntUniform(16, 256, log=True, factors=(0.5, 0.8, 1.25, 2.0), bounds=(8, 256))


def width_experiment(config: str) -> Experiment:
    hidden = (64, 64) if config == "fixed64" else (256, 256)
    space = dict(PPO_SPACE)
    if config == "searched":
        space.update(width_0=WIDTH, width_1=WIDTH)
    return Experiment(name=f"width_pbt_{config}", env="HalfCheetah-v5",
                      agent=Agent("ppo", hparams={**PPO_AGENT.hparams, "hidden": hidden}), space=space,
                      strategy=PBT(population=MEMBERS, ready_steps=READY), total_steps=TOTAL_STEPS, eval_steps=READY)
