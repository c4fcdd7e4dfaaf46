"""V-MPO learner fed by rlpop's actor processes (Song et al., ICLR 2020).

Policy evaluation with n-step targets, a top-half E-step weighted by
``softmax(A / eta)``, a weighted maximum-likelihood M-step under a KL trust
region to a TARGET policy, and Lagrange multipliers ``eta`` (temperature),
``alpha_mu`` / ``alpha_sigma`` (decoupled Gaussian KL) or ``alpha``
(categorical KL). The math lives in :mod:`rlpop.agents.vmpo_loss`.

* The actors act with the target network; the target is refreshed from the
  online network every ``target_period`` learner updates (gradient steps),
  so ``pi_old`` in the KL terms is exactly the behaviour policy of the
  rollouts collected since the last refresh.
* The learner runs on CUDA when present (``device="auto"``), the actors on CPU.
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
  multipliers; they are kept as two ``torch.optim.Adam`` objects so a state
  keeps its ``opt`` (network) / ``dual_opt`` (multipliers) format, shared
  with the batched engine.
"""
from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np
import torch

from rlpop.agents.actors import Rollout
from rlpop.agents.base import check_mutable, resolve_hparams
from rlpop.agents.networks import STD_KINDS, ActorCritic, PolicySpec
from rlpop.agents.pool_learner import PoolLearner, check_layout, to_cpu  # noqa: F401 (check_layout: spec-time checks)
from rlpop.agents.vmpo_loss import (
    DUAL_SCHEMES,
    KLConstraint,
    categorical_kl,
    gaussian_cov_kl,
    gaussian_mean_kl,
    multiplier_raw,
    multiplier_value,
    nstep_targets,
    project_multipliers_,
    vmpo_loss,
)

#: PopArt's statistics rate and its scale's bounds: V-MPO Sec. 4.2.2 ("scale lower bound of 1e-2, scale upper
#: bound of 1e6, and learning rate of 1e-4 for the statistics"); both engines use these
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
    "target_period": 100,     # rlpyt port: target network (the actors' policy) refreshed every 100 learner updates
    "n_step": None,           # V-MPO Sec. 4.1: bootstrap from the end of each unroll (None: of each env's rollout)
    "epochs": 1,              # rlpyt port: one gradient step per batch, no reuse
    "minibatch_size": 312,    # samples per learner update: the whole rollout (V-MPO's Gym batch size is not stated)
    "rollout_steps": 312,     # env steps per collect, over all envs: 8 envs x 39-step unrolls (two ports: 39)
    "num_actors": 0,          # actor processes; 0 = collect in the learner's process
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
    # the batched engine (rlpop.agents.batched_vmpo): how a shard steps its members' envs --
    # "auto" (EnvPool where it provides the env, else gymnasium), "envpool" or "gym"
    "env_backend": "auto",
}
MUTABLE = frozenset({"lr", "eps_eta", "gamma", "max_grad_norm"})


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """What each hyperparameter may be (checked at spec time, search spaces included)."""
    from rlpop.agents import hparam_rules as R
    from rlpop.agents.pool_learner import pool_rules

    return {**pool_rules(hp), **{k: R.positive(DEFAULTS[k]) for k in (
        "eps_eta", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha", "dual_lr", "init_eta", "init_alpha",
        "init_alpha_sigma", "popart_beta")},
        "target_period": R.integer(1, example=100), "n_step": R.integer(1, none_ok=True), "popart": R.flag(),
        "duals": R.one_of(*DUAL_SCHEMES), "std": R.one_of(*STD_KINDS)}


class PopArt:
    """Adaptive value-target normalisation that Preserves Outputs Precisely
    (van Hasselt et al. 2016): running first/second moments of the targets,
    and a rescaling of the value head's last linear layer when they move."""

    def __init__(self, beta: float = POPART_BETA):
        if not 0 < beta <= 1:
            raise ValueError(f"popart_beta must be in (0, 1], got {beta}")
        self.beta = beta
        self.mean, self.sq_mean = 0.0, 1.0

    @staticmethod
    def clip_std(std):
        """The scale kept within V-MPO's bounds [1e-2, 1e6] (floats or numpy arrays: the batched engine's)."""
        return np.clip(std, *POPART_STD_BOUNDS)

    @property
    def std(self) -> float:
        return float(self.clip_std(math.sqrt(max(self.sq_mean - self.mean**2, 0.0))))

    def update(self, targets: torch.Tensor, head: torch.nn.Linear) -> None:
        """Move the statistics toward ``targets`` and rescale ``head`` so its
        unnormalised outputs are unchanged (PopArt, Algorithm 1)."""
        old_mean, old_std = self.mean, self.std
        b = self.beta
        self.mean = (1 - b) * self.mean + b * float(targets.mean())
        self.sq_mean = (1 - b) * self.sq_mean + b * float(targets.pow(2).mean())
        new_std = self.std
        with torch.no_grad():
            head.weight.mul_(old_std / new_std)
            head.bias.mul_(old_std).add_(old_mean - self.mean).div_(new_std)

    def state(self) -> dict[str, float]:
        return {"mean": self.mean, "sq_mean": self.sq_mean}

    def load(self, s: dict[str, float]) -> None:
        self.mean, self.sq_mean = float(s["mean"]), float(s["sq_mean"])


class VMPO(PoolLearner):
    """``VMPO(env_id, hparams, seed)`` -- see :data:`DEFAULTS` for the hyperparameters."""

    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE

    def __init__(self, env_id: str, hparams: dict[str, Any] | None = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        self._validate(resolve_hparams("VMPO", DEFAULTS, hparams))
        net_kwargs = {**self._setup("VMPO", DEFAULTS, hparams, env_id, seed, env_kwargs), "std": self.hp["std"]}
        self.policy_spec = PolicySpec(self.policy_spec.factory, net_kwargs)  # the actors build the same head
        self.net = self._seeded(lambda: ActorCritic(**net_kwargs)).to(self.device)
        self.target = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.hp["lr"])
        self.discrete = self.net.discrete
        init = {"eta": self.hp["init_eta"]}
        if self.discrete:
            init["alpha"] = self.hp["init_alpha"]
        else:
            init["alpha_mu"] = self.hp["init_alpha"]
            init["alpha_sigma"] = self.hp["init_alpha_sigma"]
        self.dual_scheme = self.hp["duals"]
        self.duals = torch.nn.ParameterDict({
            k: torch.nn.Parameter(torch.tensor(multiplier_raw(float(v), self.dual_scheme), device=self.device))
            for k, v in init.items()})
        # "paper": the network optimiser's lr (kept in step by _apply_lr), betas and eps -- see the module docstring
        self.dual_opt = torch.optim.Adam(self.duals.parameters(), lr=self._dual_lr())
        self.popart = PopArt(self.hp["popart_beta"]) if self.hp["popart"] else None
        self.target_updates = 0   # target-network refreshes (self.updates: learner updates, gradient steps)

    @staticmethod
    def _validate(hp: dict[str, Any]) -> None:
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

    @staticmethod
    def _check_mutable_values(hp: dict[str, Any]) -> None:
        """The values a strategy may set while training (both engines check them before taking them)."""
        for name in ("lr", "eps_eta"):
            if not float(hp[name]) > 0:
                raise ValueError(f"VMPO: {name} must be > 0, got {hp[name]!r}")
        if not 0 <= float(hp["gamma"]) <= 1:
            raise ValueError(f"VMPO: gamma must be in [0, 1], got {hp['gamma']!r}")

    # ---------------------------------------------------------------- protocol
    def get_hparams(self) -> dict[str, Any]:
        return dict(self.hp)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        check_mutable("VMPO", hparams, self.hp, MUTABLE)
        new = {**self.hp, **hparams}
        self._check_mutable_values(new)
        self.hp = new
        self.reward_scaler.gamma = self.hp["gamma"]

    def get_state(self) -> dict[str, Any]:
        cpu = lambda sd: {k: v.detach().cpu().clone() for k, v in sd.items()}  # noqa: E731
        return {
            **self._base_state(),
            "target": cpu(self.target.state_dict()),
            "duals": cpu(self.duals.state_dict()),
            "dual_opt": to_cpu(copy.deepcopy(self.dual_opt.state_dict())),
            "multipliers": self.multipliers(),
            "popart": self.popart.state() if self.popart is not None else None,
            "target_updates": self.target_updates,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace weights, target, optimisers, multipliers, normalisers and
        hparams; the actors start fresh episodes."""
        check_dual_scheme(self.hp, state)
        self._load_base_state(state, MUTABLE)
        self.target.load_state_dict(state["target"])
        self.duals.load_state_dict(state["duals"])
        self.dual_opt.load_state_dict(state["dual_opt"])
        if self.popart is not None and state.get("popart") is not None:
            self.popart.load(state["popart"])
        self.target_updates = state["target_updates"]
        self._apply_lr()
        self._restart_episodes()

    # ---------------------------------------------------------------- helpers
    def multipliers(self) -> dict[str, float]:
        """Current values of eta and the alphas."""
        return {k: float(multiplier_value(p.detach(), self.dual_scheme)) for k, p in self.duals.items()}

    def _multiplier_tensors(self) -> dict[str, torch.Tensor]:
        return {k: multiplier_value(p, self.dual_scheme) for k, p in self.duals.items()}

    def _dual_lr(self) -> float:
        return float(self.hp["lr"] if self.dual_scheme == "paper" else self.hp["dual_lr"])

    def _apply_lr(self) -> None:
        super()._apply_lr()
        for g in self.dual_opt.param_groups:
            g["lr"] = self._dual_lr()

    def actor_weights(self) -> dict[str, torch.Tensor]:
        """CPU copy of the TARGET network: what the actors act with."""
        return {k: v.detach().cpu().clone() for k, v in self.target.state_dict().items()}

    def _refresh_target(self) -> None:
        self.target.load_state_dict(self.net.state_dict())
        self.target_updates += 1

    # ---------------------------------------------------------------- learning
    def learn(self, ro: Rollout) -> dict[str, float]:
        """Learner updates on one rollout (``epochs`` passes of minibatches)."""
        hp, dev = self.hp, self.device
        T, N = ro.rewards.shape
        obs, next_obs, rewards = self._prepare(ro)
        rewards_t = torch.as_tensor(rewards, device=dev)
        term = torch.as_tensor(ro.terminated, device=dev)
        trunc = torch.as_tensor(ro.truncated, device=dev)
        actions = torch.as_tensor(ro.actions.reshape(T * N, *ro.actions.shape[2:]), device=dev)
        n_step = T if hp["n_step"] is None else int(hp["n_step"])
        batch = T * N
        mb = int(min(hp["minibatch_size"], batch))
        metrics: dict[str, float] = {}
        for epoch in range(int(hp["epochs"])):
            with torch.no_grad():
                next_v = self._unnormalised_value(next_obs).reshape(T, N)
                targets = nstep_targets(rewards_t, next_v, term, trunc, float(hp["gamma"]), n_step).reshape(-1)
            if self.popart is not None and epoch == 0:
                self.popart.update(targets, self.net.critic[-1])
            perm = torch.as_tensor(self.rng.permutation(batch), device=dev)
            for start in range(0, batch - mb + 1, mb):
                idx = perm[start:start + mb]
                metrics = self._update(obs[idx], actions[idx], targets[idx])
        metrics["explained_variance"] = self._explained_variance(obs, targets)
        return metrics

    def _unnormalised_value(self, obs: torch.Tensor) -> torch.Tensor:
        v = self.net.value(obs)
        if self.popart is not None:
            v = v * self.popart.std + self.popart.mean
        return v

    @torch.no_grad()
    def _explained_variance(self, obs: torch.Tensor, targets: torch.Tensor) -> float:
        var = float(targets.var())
        if var <= 0:
            return float("nan")
        return 1.0 - float((targets - self._unnormalised_value(obs)).var()) / var

    def _kl_constraints(self, obs: torch.Tensor) -> list[KLConstraint]:
        a, b = self.net.policy_params(obs)
        with torch.no_grad():
            a_old, b_old = self.target.policy_params(obs)
        m = self._multiplier_tensors()
        hp = self.hp
        if self.discrete:
            return [KLConstraint("pi", categorical_kl(a, a_old), m["alpha"], float(hp["eps_alpha"]))]
        std, std_old = b.exp(), b_old.exp()
        return [
            KLConstraint("mu", gaussian_mean_kl(a, a_old, std_old), m["alpha_mu"], float(hp["eps_alpha_mu"])),
            KLConstraint("sigma", gaussian_cov_kl(std, std_old), m["alpha_sigma"], float(hp["eps_alpha_sigma"])),
        ]

    def _update(self, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """One learner update (gradient step) on a minibatch; refreshes the
        target network every ``target_period`` updates."""
        hp = self.hp
        self._apply_lr()
        values = self.net.value(obs)
        if self.popart is not None:  # loss and advantages in normalised units
            targets = (targets - self.popart.mean) / self.popart.std
        logprob, entropy = self.net.log_prob_entropy(obs, actions)
        eta = multiplier_value(self.duals["eta"], self.dual_scheme)
        loss, metrics = vmpo_loss(logprob, values, targets, eta, float(hp["eps_eta"]),
                                  self._kl_constraints(obs))
        self.opt.zero_grad(set_to_none=True)
        self.dual_opt.zero_grad(set_to_none=True)
        loss.backward()
        if hp["max_grad_norm"] is not None:  # None: no clipping (0 is refused by the rules)
            critic = list(self.net.critic.parameters())
            ids = {id(p) for p in critic}
            policy = [p for p in self.net.parameters() if id(p) not in ids]
            for part in (critic, policy):
                torch.nn.utils.clip_grad_norm_(part, float(hp["max_grad_norm"]))
        self.opt.step()
        self.dual_opt.step()
        if self.dual_scheme == "paper":
            for p in self.duals.values():
                project_multipliers_(p.data)
        self.updates += 1
        if self.updates % int(hp["target_period"]) == 0:
            self._refresh_target()
        metrics["entropy"] = float(entropy.detach().mean())
        metrics["lr"] = float(self.opt.param_groups[0]["lr"])
        return metrics



def check_dual_scheme(hp: dict[str, Any], state: dict[str, Any]) -> None:
    """A state's multipliers are read under the scheme that learnt them (states from before ``duals`` existed
    were learnt as "softplus_adam")."""
    theirs = state["hparams"].get("duals", "softplus_adam")
    if theirs != hp["duals"]:
        raise ValueError(f"VMPO: this state's multipliers were learnt with duals={theirs!r}, this learner uses "
                         f"duals={hp['duals']!r}; set agent.hparams.duals={theirs!r} to load it")
