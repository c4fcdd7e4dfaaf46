"""What every method of the issue-26 study shares (benchmarks/study.py): the learner, its fixed settings and the
search space, for PPO and for V-MPO. The study's experiment files (study_<learner>_<method>.py) import it by name
-- this folder is on the import path when a run starts and when it resumes (config.json's experiment_dir) -- so a
run directory's copy of an experiment file resumes (a ``Path(__file__).with_name(...)`` sibling would be looked for
in the run directory). The study runner --sets env, budget, intervals and worker counts from its frozen settings,
and refuses to run when this file changed after they were frozen.

PPO, searched as the paper's RL study searches two hyperparameters of V-MPO (lr and the trust-region size eps_eta):

- lr: log-uniform 1e-5..1e-3 at the start, explore factors [0.5, 0.8, 1.25, 2.0] (the paper's lr, exactly);
- clip: PPO's trust-region size in the role of eps_eta: log-uniform 0.1..0.4 (eps_eta's 4x range), explore
  factors [0.8, 0.95, 1.05, 1.2] (the paper's eps_eta factors), kept within 0.02..0.8.

PPO fixed (rlpop's choice, not tuned here): 2048-step rollouts over 4 envs stepped in the learner's process
(EnvPool for Hopper, Walker2d and HalfCheetah), 5 epochs of 256-step minibatches (40 gradient steps per rollout:
cheaper than CleanRL's 10 x 64 for a 16-22 member population on CPUs).

V-MPO: the paper's space (lr as above; eps_eta log-uniform 5e-3..2e-2 x[0.8, 0.95, 1.05, 1.2]) and
experiments/humanoid_fire.py's V-MPO settings, except that its 16 envs are stepped in the learner's process.
"""
from rlpop.experiment import FIRE, PBT, Agent, Experiment, RandomSearch
from rlpop.hparams import LogUniform

PPO_AGENT = Agent("ppo", hparams={"num_actors": 0, "envs_per_actor": 4, "rollout_steps": 2048, "epochs": 5,
                                  "minibatch_size": 256})
PPO_SPACE = {
    "lr": LogUniform(1e-5, 1e-3, factors=(0.5, 0.8, 1.25, 2.0)),
    "clip": LogUniform(0.1, 0.4, factors=(0.8, 0.95, 1.05, 1.2), bounds=(0.02, 0.8)),
}

VMPO_AGENT = Agent("vmpo", hparams={"eps_alpha_mu": 7.5e-3, "eps_alpha_sigma": 1e-5, "hidden": (256, 256),
                                    "num_actors": 0, "envs_per_actor": 16, "rollout_steps": 624,
                                    "minibatch_size": 624, "target_period": 100, "n_step": None, "epochs": 1,
                                    "popart": True, "norm_reward": False})
VMPO_SPACE = {
    "lr": LogUniform(1e-5, 1e-3, factors=(0.5, 0.8, 1.25, 2.0)),
    "eps_eta": LogUniform(5e-3, 2e-2, factors=(0.8, 0.95, 1.05, 1.2)),
}

AGENTS = {"ppo": PPO_AGENT, "vmpo": VMPO_AGENT}
SPACES = {"ppo": PPO_SPACE, "vmpo": VMPO_SPACE}
#: placeholders the study runner replaces (--set): env, budget, Q / ready interval
ENV, TOTAL_STEPS, READY = "Hopper-v5", 512_000, 6144


def study_experiment(learner: str, method: str) -> Experiment:
    """The study's experiment for ``learner`` ("ppo" or "vmpo") and ``method`` ("rs", "pbt" or "fire"): 22 workers
    each (RS and PBT: 22 members; FIRE: 2 sub-populations of 8 + 6 evaluators, the paper's 18 + 18 + 14 scaled with
    evaluators 3/4 of a parent sub-population), the same learner, search space and initial distributions."""
    strategy = {"rs": lambda: RandomSearch(population=22),
                "pbt": lambda: PBT(population=22, ready_steps=READY),
                "fire": lambda: FIRE(subpops=2, subpop_size=8, evaluators=6, ready_steps=READY,
                                     max_eval_steps=10 * READY, min_steps_before_eval=(TOTAL_STEPS // 6,), p_stat=0.01),
                }[method]()
    return Experiment(name=f"study_{learner}_{method}", env=ENV, agent=AGENTS[learner], space=SPACES[learner],
                      strategy=strategy, total_steps=TOTAL_STEPS, eval_steps=READY)
