"""V-MPO's hyperparameters (Song et al., ICLR 2020): defaults, the ones a population may change, their rules.

The learner is :class:`rlpop.agents.batched_vmpo.BatchedVMPO` (K >= 1 members in one process; a single run
is a population of one).

Policy evaluation with n-step targets, a top-half E-step weighted by
``softmax(A / eta)``, a weighted maximum-likelihood M-step under a KL trust
region to a TARGET policy, and Lagrange multipliers ``eta`` (temperature),
``alpha_mu`` / ``alpha_sigma`` (decoupled Gaussian KL) or ``alpha``
(categorical KL). The math lives in :mod:`rlpop.agents.vmpo_loss`.

* The envs are acted on with the target network; the target is refreshed from
  the online network every ``target_period`` learner updates (gradient steps),
  so ``pi_old`` in the KL terms is exactly the behaviour policy of the
  rollouts collected since the last refresh.
* The learner runs on CUDA when present (``device="auto"``), the envs on CPU.
* Hyperparameters in :data:`MUTABLE` are read at every update:
  ``set_hparams(lr=...)`` reaches the optimiser at the next update.
* PopArt (van Hasselt et al. 2016) value normalisation, on by default as in
  V-MPO (``popart=False`` turns it off): the critic predicts normalised
  values, the output layer is rescaled whenever the statistics move, and
  advantages are in normalised units. Rewards are not normalised by default
  (``norm_reward=False``), as in V-MPO.
* Defaults follow V-MPO's text where it states them: lr 1e-4, unrolls
  bootstrapped from their end, PopArt with statistics rate 1e-4 and scale
  bounds [1e-2, 1e6] (Sec. 4.2.2), the multipliers learnt with the network's
  Adam at its lr and projected to >= 1e-8 after each step (``duals="paper"``,
  Sec. 4.1); and two V-MPO ports that agree on them, rlpyt's and
  CarsonBurke/cleanrl's (secondary: the paper's Gym table could not be read;
  the README's V-MPO table gives each row's source), for one gradient step
  per batch (``epochs=1``), target period 100, eps_eta 0.01, 39-step
  unrolls, discount and initial multipliers. A state-dependent
  Gaussian std output by the policy net (``std="state"``, as the rlpyt port)
  is an option; the default keeps the state-independent one (see DEFAULTS).
* ``duals="paper"``: the multipliers are raw tensors stepped by an Adam with
  the network optimiser's lr, betas and eps, stepped together with it. Adam
  is per parameter, so this is exactly one Adam over the network and the
  multipliers; a state keeps them as two ``torch.optim.Adam`` state dicts,
  ``opt`` (network) and ``dual_opt`` (multipliers).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rlpop.agents.networks import STD_KINDS
from rlpop.agents.rollout_hparams import check_layout  # noqa: F401 (spec-time check, found in this module)
from rlpop.agents.vmpo_loss import DUAL_SCHEMES
from rlpop.agents.widths import DEFAULTS as WIDTH_DEFAULTS, NAMES as WIDTH_NAMES

#: PopArt's statistics rate and its scale's bounds: V-MPO Sec. 4.2.2 ("scale lower bound of 1e-2, scale upper
#: bound of 1e6, and learning rate of 1e-4 for the statistics")
POPART_BETA = 1e-4
POPART_STD_BOUNDS = (1e-2, 1e6)

# Defaults follow V-MPO's Gym settings (Song et al. 2020, appendix; as the FIRE PBT paper replicates them,
# section 4.2) where they are stated; the README's "V-MPO settings" table gives each one's source and the
# settings that are rlpop's own (network size, batch size, obs normalisation, gradient clipping).
DEFAULTS: dict[str, Any] = {
    # mutable: read at every update
    "lr": 1e-4,               # V-MPO Sec. 4: Adam 1e-4 (FIRE PBT searches 1e-5..1e-3 around it)
    "eps_eta": 0.01,          # rlpyt port: eps_eta 0.01 (FIRE PBT searches 5e-3..2e-2 around it)
    "gamma": 0.99,            # rlpyt port: discount 0.99
    "max_grad_norm": 1.0,     # rlpop's (not stated in V-MPO); per network (actor, critic); None: no clipping
    # fixed for a learner's lifetime
    "eps_alpha_mu": 7.5e-3,   # FIRE PBT paper's Gym setting (V-MPO samples log-uniform 5e-3..1e-2)
    "eps_alpha_sigma": 1e-5,  # FIRE PBT paper's Gym setting (V-MPO samples log-uniform 5e-6..5e-5)
    "eps_alpha": 0.01,        # categorical policies: bound on KL(pi_old || pi) (not used on Gym's Box tasks)
    "target_period": 100,     # rlpyt port: target network (the acting policy) refreshed every 100 learner updates
    "n_step": None,           # V-MPO Sec. 4.1: bootstrap from the end of each unroll (None: of each env's rollout)
    "epochs": 1,              # rlpyt port: one gradient step per batch, no reuse
    "minibatch_size": 312,    # samples per learner update: the whole rollout (V-MPO's Gym batch size is not stated)
    "rollout_steps": 312,     # env steps per collect, over all envs: 8 envs x 39-step unrolls (two ports: 39)
    "num_actors": 0,          # env processes; 0 = step the envs in the learner's process
    "envs_per_actor": 8,
    "hidden": (64, 64),       # rlpop's (V-MPO's Gym network is not stated); separate policy and value MLPs
    "init_log_std": 0.0,
    "init_eta": 1.0,          # rlpyt port: initial eta 1
    "init_alpha": 1.0,        # rlpyt port: initial alpha_mu 1 (also the categorical alpha)
    "init_alpha_sigma": 1.0,  # rlpyt port: initial alpha_Sigma 1
    # V-MPO Sec. 4.1: multipliers in the network's Adam (lr above), projected to >= 1e-8 after each step;
    # "softplus_adam": softplus(raw) + 1e-8, raw in a separate Adam at dual_lr (rlpop's earlier scheme)
    "duals": "paper",
    "dual_lr": 1e-2,          # duals="softplus_adam" only: Adam step size of the raw (softplus) parameters
    # the Gaussian's std: "state" -- output by the policy net, softplus(x) + 1e-6 (rlpyt's V-MPO port);
    # "param" -- a free state-independent log-std (PPO's); not used by Discrete actions. "param" stays the
    # default: with the paper's multipliers, "state" reached InvertedPendulum's 800 in 1 of 3 seeds at the
    # learning test's budget, "param" in 3 of 3 (benchmarks/results/vmpo_duals.json)
    "std": "param",
    "norm_obs": True,         # rlpop's running mean/std (not stated in V-MPO)
    "norm_reward": False,     # V-MPO: raw rewards; PopArt normalises the value targets
    "popart": True,           # V-MPO: PopArt value normalisation
    "popart_beta": POPART_BETA,  # V-MPO Sec. 4.2.2: statistics rate 1e-4
    "device": "auto",
    "torch_threads": 1,
    # how a shard steps its members' envs (rlpop.agents.envbank): "auto" (EnvPool where it provides the env, else gymnasium), "envpool" or "gym"
    "env_backend": "auto",
    # EnvPool: act for one half of the stepped members while the other half's envs step (BatchedLearner.collect);
    # off by default: on 2 cores it cost more main-thread time than it hid (benchmarks/population_throughput.py)
    "overlap": False,
}
# the units of each hidden layer (rlpop.agents.widths): width_0 .. width_3, None = hidden[i]; searchable
DEFAULTS.update(WIDTH_DEFAULTS)
MUTABLE = frozenset({"lr", "eps_eta", "gamma", "max_grad_norm", *WIDTH_NAMES})


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """What each hyperparameter may be (checked at spec time, search spaces included)."""
    from rlpop.agents import hparam_rules as R
    from rlpop.agents.rollout_hparams import shared_rules

    return {**shared_rules(hp), **{k: R.positive(DEFAULTS[k]) for k in (
        "eps_eta", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha", "dual_lr", "init_eta", "init_alpha",
        "init_alpha_sigma", "popart_beta")},
        "target_period": R.integer(1, example=100), "n_step": R.integer(1, none_ok=True), "popart": R.flag(),
        "duals": R.one_of(*DUAL_SCHEMES), "std": R.one_of(*STD_KINDS)}


def validate(hp: dict[str, Any]) -> None:
    """A member's resolved hyperparameters, checked before the learner is built."""
    for name in ("lr", "eps_eta", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha", "dual_lr",
                 "init_eta", "init_alpha", "init_alpha_sigma"):
        if not float(hp[name]) > 0:
            raise ValueError(f"VMPO: {name} must be > 0, got {hp[name]!r}")
    for name in ("target_period", "epochs", "minibatch_size", "rollout_steps", "envs_per_actor"):
        if int(hp[name]) < 1:
            raise ValueError(f"VMPO: {name} must be an integer >= 1, got {hp[name]!r}")
    if hp["duals"] not in DUAL_SCHEMES:
        raise ValueError(f"VMPO: duals must be one of {DUAL_SCHEMES}, got {hp['duals']!r}")
    if hp["std"] not in STD_KINDS:
        raise ValueError(f"VMPO: std must be one of {STD_KINDS}, got {hp['std']!r}")
    if hp["n_step"] is not None and int(hp["n_step"]) < 1:
        raise ValueError(f"VMPO: n_step must be None (whole rollout) or >= 1, got {hp['n_step']!r}")
    if not 0 <= float(hp["gamma"]) <= 1:
        raise ValueError(f"VMPO: gamma must be in [0, 1], got {hp['gamma']!r}")


def check_mutable_values(hp: dict[str, Any]) -> None:
    """The values a strategy may set while training (checked before the learner takes them)."""
    for name in ("lr", "eps_eta"):
        if not float(hp[name]) > 0:
            raise ValueError(f"VMPO: {name} must be > 0, got {hp[name]!r}")
    if not 0 <= float(hp["gamma"]) <= 1:
        raise ValueError(f"VMPO: gamma must be in [0, 1], got {hp['gamma']!r}")


def popart_std(std):
    """PopArt's scale kept within V-MPO's bounds [1e-2, 1e6] (floats or numpy arrays)."""
    return np.clip(std, *POPART_STD_BOUNDS)


def check_dual_scheme(hp: dict[str, Any], state: dict[str, Any]) -> None:
    """A state's multipliers are read under the scheme that learnt them (states from before ``duals`` existed
    were learnt as "softplus_adam")."""
    theirs = state["hparams"].get("duals", "softplus_adam")
    if theirs != hp["duals"]:
        raise ValueError(f"VMPO: this state's multipliers were learnt with duals={theirs!r}, this learner uses "
                         f"duals={hp['duals']!r}; set agent.hparams.duals={theirs!r} to load it")
