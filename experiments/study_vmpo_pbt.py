"""The issue-26 study's PBT over V-MPO (benchmarks/study.py; a pilot option: the study uses V-MPO only if its
pilot learns at the study's budget). The paper's space (lr log-uniform 1e-5..1e-3 x[0.5, 0.8, 1.25, 2.0], eps_eta
log-uniform 5e-3..2e-2 x[0.8, 0.95, 1.05, 1.2]) and experiments/humanoid_fire.py's V-MPO settings, except that the
16 envs are stepped in the learner's process (EnvPool for Hopper, Walker2d and HalfCheetah). The study runner --sets
env, budget, intervals and worker count from its frozen settings."""
import dataclasses
from pathlib import Path

from rlpop.experiment import PBT, Experiment
from rlpop.run import load_experiment

humanoid = load_experiment(Path(__file__).with_name("humanoid_fire.py"))

experiment = Experiment(
    name="study_vmpo_pbt",
    env="Hopper-v5",
    agent=dataclasses.replace(humanoid.agent, hparams={**humanoid.agent.hparams, "num_actors": 0,
                                                       "envs_per_actor": 16}),
    space=humanoid.space,
    strategy=PBT(population=22, ready_steps=6240),
    total_steps=624_000,
    eval_steps=6240,
)
