"""PPO's hyperparameters: their defaults, the ones a population may change, and their value rules.

The learner is :class:`rlpop.agents.batched_ppo.BatchedPPO` (K >= 1 members in one process; a single run is a
population of one): discrete and Box actions; GAE; clipped surrogate; (clipped) value loss; entropy bonus;
per-minibatch advantage normalisation; observation normalisation and reward scaling as learner state;
orthogonal init; gradient clipping; the losses are :mod:`rlpop.agents.ppo_loss`'s. Every hyperparameter in
:data:`MUTABLE` is read at each update, so ``set_hparams`` takes effect on the next update -- the optimiser's
learning rate included.
"""
from __future__ import annotations

from typing import Any

from rlpop.agents.rollout_hparams import check_layout  # noqa: F401 (spec-time check, found in this module)
from rlpop.agents.widths import DEFAULTS as WIDTH_DEFAULTS, NAMES as WIDTH_NAMES

DEFAULTS: dict[str, Any] = {
    # mutable: read at every update
    "lr": 3e-4,
    "clip": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "gae_lambda": 0.95,
    "gamma": 0.99,
    "epochs": 10,
    "minibatch_size": 64,
    "max_grad_norm": 0.5,
    "vf_clip": 0.2,          # None/0 disables value clipping
    # fixed for a learner's lifetime
    "rollout_steps": 2048,   # env steps per update, over all envs
    "num_actors": 0,         # env processes; 0 = step the envs in the learner's process
    "envs_per_actor": 8,     # envs per actor process (num_actors=0: per member); 8 learns per env step as 1 does and steps faster (README)
    "hidden": (64, 64),
    "init_log_std": 0.0,
    "norm_obs": True,
    "norm_reward": True,
    "device": "auto",
    "torch_threads": 1,
    # how a shard steps its members' envs (rlpop.agents.envbank): "auto" (EnvPool where it provides the env,
    # else gymnasium), "envpool" or "gym"
    "env_backend": "auto",
    # EnvPool: act for one half of the stepped members while the other half's envs step (BatchedLearner.collect);
    # off by default: on 2 cores it cost more main-thread time than it hid (benchmarks/population_throughput.py)
    "overlap": False,
}
# the units of each hidden layer (rlpop.agents.widths): width_0 .. width_3, None = hidden[i]; searchable
DEFAULTS.update(WIDTH_DEFAULTS)
MUTABLE = frozenset({"lr", "clip", "ent_coef", "vf_coef", "gae_lambda", "gamma", "epochs",
                     "minibatch_size", "max_grad_norm", "vf_clip", *WIDTH_NAMES})


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """What each hyperparameter may be (checked at spec time, search spaces included)."""
    from rlpop.agents import hparam_rules as R
    from rlpop.agents.rollout_hparams import shared_rules

    return {**shared_rules(hp), "clip": R.positive(0.2), "ent_coef": R.nonnegative(0.01), "vf_coef": R.nonnegative(0.5),
            "gae_lambda": R.unit(0.95), "vf_clip": R.nonnegative(0.2, none_ok=True)}
