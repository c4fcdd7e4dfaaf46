"""PBT over PPO on InvertedPendulum-v5: 8 members, 20,480 actor steps each, ready every 512 steps (1/40).

The cheap MuJoCo task of benchmarks/reproduce_rl.py's six-method study (--env invpend: RS, RS+ASHA, BO+ASHA,
PBT, PB2, FIRE PBT at equal workers and equal actor steps per worker). PPO reaches the task's maximum return
of 1000 within a few tens of thousands of steps with good settings; the search space is wide enough that a
random draw can fail: lr log-uniform 1e-5..1e-2 and clip 0.05..0.5, with PBT's usual perturbation factors.
PPO's update is fixed and cheap (4 epochs, minibatch 256, 512-step rollouts over 4 envs: the batched update of
8 members dominated the time on the shared 2-core machine with 5 x 128). The same space and initial
distributions are used by every experiments/invpend_*.py file.
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform, Uniform

SPACE = {
    "lr": LogUniform(1e-5, 1e-2, factors=(0.5, 0.8, 1.25, 2.0), bounds=(1e-6, 3e-2)),
    "clip": Uniform(0.05, 0.5, factors=(0.8, 0.9, 1.1, 1.25), bounds=(0.02, 0.8)),
}

experiment = Experiment(
    name="invpend_pbt",
    env="InvertedPendulum-v5",
    agent=Agent("ppo", hparams={"num_actors": 0, "envs_per_actor": 4, "rollout_steps": 512, "epochs": 4,
                                "minibatch_size": 256}),
    space=SPACE,
    strategy=PBT(population=8, ready_steps=512),
    total_steps=20_480,
    eval_steps=512,
)
