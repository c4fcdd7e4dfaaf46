"""The issue-26 study's PBT over PPO (benchmarks/study.py): the study's env, budget, intervals and worker count
are --set by the study runner from its frozen settings (benchmarks/results/study_<env>.json); this file holds
what every method of the study shares -- the learner, its fixed settings and the search space.

Searched, as the paper's RL study searches two hyperparameters of V-MPO (lr and the trust-region size eps_eta):

- lr: log-uniform 1e-5..1e-3 at the start, explore factors [0.5, 0.8, 1.25, 2.0] (the paper's lr, exactly);
- clip: PPO's trust-region size in the role of eps_eta: log-uniform 0.1..0.4 (eps_eta's 4x range), explore factors
  [0.8, 0.95, 1.05, 1.2] (the paper's eps_eta factors), kept within 0.02..0.8.

Fixed (rlpop's choice, not tuned here): 2048-step rollouts over 4 envs, 5 epochs of 256-step minibatches
(40 gradient steps per rollout: cheaper than CleanRL's 10 x 64 for a 16-22 member population on a CPU).
Alone: rlpop run experiments/study_ppo_pbt.py --set env=Walker2d-v5 --set total_steps=2e5
"""
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

SPACE = {
    "lr": LogUniform(1e-5, 1e-3, factors=(0.5, 0.8, 1.25, 2.0)),
    "clip": LogUniform(0.1, 0.4, factors=(0.8, 0.95, 1.05, 1.2), bounds=(0.02, 0.8)),
}

experiment = Experiment(
    name="study_ppo_pbt",
    env="Hopper-v5",
    agent=Agent("ppo", hparams={"num_actors": 0, "envs_per_actor": 4, "rollout_steps": 2048, "epochs": 5,
                                "minibatch_size": 256}),
    space=SPACE,
    strategy=PBT(population=22, ready_steps=6144),
    total_steps=614_400,
    eval_steps=6144,
)
