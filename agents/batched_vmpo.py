"""V-MPO for K population members at once (the batched engine's V-MPO).

rlpop's V-MPO (hyperparameters: :mod:`rlpop.agents.vmpo`; losses:
:mod:`rlpop.agents.vmpo_loss`); a single run is a population of one. Member ``k``
learns as it would alone with its own hyperparameters and seed: networks and
target network, n-step targets, top-half E-step, temperature and KL
multipliers, PopArt, gradient clipping per network, target refresh every
``target_period`` updates. The K
members' online and target weights, Adam moments, multipliers (and their Adam
moments), PopArt statistics and normalisers are stacked along a member
dimension; one forward/backward pass updates every member. A member's state
keeps network and multiplier Adam states in ``torch.optim.Adam``'s format.

Per member (``[K]`` tensors): ``lr``, ``eps_eta``, ``gamma``,
``max_grad_norm`` -- every hyperparameter V-MPO lets a population change.
Everything else (``epochs``, ``minibatch_size``, ``n_step``, ``target_period``,
the KL bounds, ``duals``, ``std``, ...) is fixed for a learner's lifetime and
shared by a batch. ``duals="paper"``: each member's multipliers step with its
network's Adam arithmetic at its own ``lr`` and are projected to >= 1e-8; ``std="state"``: the stacked policy nets output the std too
(:class:`rlpop.agents.stacked.StackedActorCritic`).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from rlpop import streams
from rlpop.agents.batched_base import BatchedLearner, gather_rows, member_major
from rlpop.agents.networks import log_prob_entropy
from rlpop.agents.stacked import (adam_member_state, adam_step, clip_grad_norm_per_member, load_adam_member,
                                  to_module_layout, from_module_layout)
from rlpop.agents.vmpo import (DEFAULTS, MUTABLE, check_dual_scheme, check_layout, check_mutable_values,  # noqa: F401
                               hparam_rules, popart_std, validate)  # (check_layout, hparam_rules: spec-time rules)
from rlpop.agents.vmpo_loss import (KLConstraint, categorical_kl, gaussian_cov_kl, gaussian_mean_kl,
                                    multiplier_raw, multiplier_value, nstep_targets, project_multipliers_,
                                    valid_mean, vmpo_loss_members)

DUAL_EPS = 1e-8   # torch.optim.Adam's default


class BatchedVMPO(BatchedLearner):
    """``BatchedVMPO(env_id, [hparams per member], [seed per member])``."""

    NAME: ClassVar[str] = "VMPO"
    DEFAULTS: ClassVar[dict[str, Any]] = DEFAULTS
    MUTABLE: ClassVar[frozenset[str]] = MUTABLE
    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE
    SHARED: ClassVar[tuple[str, ...]] = tuple(k for k in DEFAULTS if k not in MUTABLE)

    def __init__(self, env_id: str, hparams, seeds, env_kwargs=None, update_threads=None):
        for h in hparams:
            validate({**DEFAULTS, **h})
        super().__init__(env_id, hparams, seeds, env_kwargs, update_threads)
        hp = self.hps[0]
        dev = self.device
        self.target_flat = self.net.flat.clone()
        self.exp_avg = torch.zeros_like(self.net.flat)
        self.exp_avg_sq = torch.zeros_like(self.net.flat)
        self.adam_steps = torch.zeros(self.k, dtype=torch.float64, device=dev)
        init = {"eta": hp["init_eta"]}
        if self.net.discrete:
            init["alpha"] = hp["init_alpha"]
        else:
            init["alpha_mu"] = hp["init_alpha"]
            init["alpha_sigma"] = hp["init_alpha_sigma"]
        self.dual_names = list(init)
        self._dual_order = sorted(self.dual_names)  # the order of a state's dual optimiser entries
        self.dual_scheme = hp["duals"]
        self.duals = torch.tensor([[multiplier_raw(float(v), self.dual_scheme) for v in init.values()]] * self.k,
                                  device=dev)
        self.dual_m = torch.zeros_like(self.duals)
        self.dual_v = torch.zeros_like(self.duals)
        self.dual_steps = torch.zeros(self.k, dtype=torch.float64, device=dev)
        self.popart = bool(hp["popart"])
        self.popart_mean = np.zeros(self.k)
        self.popart_sq = np.ones(self.k)
        self.target_updates = [0] * self.k
        # gradient clipping per network: the critic's parameters, and the rest (the policy)
        self.critic_cols = [self.net.offsets[n] for n in self.net.names if n.startswith("critic.")]
        self.policy_cols = [self.net.offsets[n] for n in self.net.names if not n.startswith("critic.")]
        self.head = f"critic.{2 * (self.net.n_layers - 1)}"

    # ---------------------------------------------------------------- state
    def acting_flat(self) -> torch.Tensor:
        return self.target_flat  # the actors act with the target network (pi_old of the KL terms)

    def weight_stacks(self) -> list[torch.Tensor]:
        return [self.net.flat, self.target_flat]  # a width change reaches the online and the target network

    def multipliers(self, k: int) -> dict[str, float]:
        return {n: float(multiplier_value(self.duals[k, i], self.dual_scheme)) for i, n in enumerate(self.dual_names)}

    def _dual_lr(self, k: int) -> float:
        """The multipliers' Adam step size: the member's lr ("paper") or dual_lr ("softplus_adam")."""
        return float(self.hps[k]["lr" if self.dual_scheme == "paper" else "dual_lr"])

    def _popart_std(self, k: int | slice | np.ndarray) -> np.ndarray:
        var = np.maximum(self.popart_sq[k] - self.popart_mean[k] ** 2, 0.0)
        return popart_std(np.sqrt(var))

    def get_state(self, k: int) -> dict[str, Any]:
        d = {"state": {}, "param_groups": [{"lr": self._dual_lr(k), "betas": (0.9, 0.999),
                                             "eps": DUAL_EPS, "weight_decay": 0, "amsgrad": False,
                                             "maximize": False, "foreach": None, "capturable": False,
                                             "differentiable": False, "fused": None,
                                             "decoupled_weight_decay": False,
                                             "params": list(range(len(self.dual_names)))}]}
        if float(self.dual_steps[k]) > 0:
            for j, name in enumerate(self._dual_order):  # the state's multipliers in sorted order
                i = self.dual_names.index(name)
                d["state"][j] = {"step": torch.tensor(float(self.dual_steps[k])),
                                 "exp_avg": self.dual_m[k, i].detach().cpu().clone(),
                                 "exp_avg_sq": self.dual_v[k, i].detach().cpu().clone()}
        return {
            "net": self.net.member_state_dict(k),
            "target": to_module_layout(self.net, self.target_flat[k:k + 1]),
            "opt": adam_member_state(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k,
                                     self.hps[k]["lr"], eps=DUAL_EPS),
            "duals": {n: self.duals[k, i].detach().cpu().clone() for i, n in enumerate(self.dual_names)},
            "dual_opt": d,
            "multipliers": self.multipliers(k),
            "obs_rms": self.obs_rms[k].state(),
            "reward_scaler": self.reward_scalers[k].state(),
            "popart": {"mean": float(self.popart_mean[k]), "sq_mean": float(self.popart_sq[k])} if self.popart else None,
            "hparams": dict(self.hps[k]),
            streams.KEY: self.stream_state(k),
            "updates": self.updates[k],
            "target_updates": self.target_updates[k],
            "env_steps": self.env_steps[k],
        }

    @torch.no_grad()
    def set_state(self, k: int, state: dict[str, Any]) -> None:
        check_dual_scheme(self.hps[k], state)
        self.net.load_member(k, state["net"])
        self.target_flat[k] = from_module_layout(self.net, state["target"]).to(self.device)
        load_adam_member(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k, state["opt"])
        for i, n in enumerate(self.dual_names):
            self.duals[k, i] = torch.as_tensor(state["duals"][n])
        ds = {int(i): s for i, s in state["dual_opt"].get("state", {}).items()}
        self.dual_steps[k] = float(ds[0]["step"]) if ds else 0.0
        for j, name in enumerate(self._dual_order):
            i = self.dual_names.index(name)
            self.dual_m[k, i] = torch.as_tensor(ds[j]["exp_avg"]) if j in ds else 0.0
            self.dual_v[k, i] = torch.as_tensor(ds[j]["exp_avg_sq"]) if j in ds else 0.0
        self.obs_rms[k].load(state["obs_rms"])
        self.reward_scalers[k].load(state["reward_scaler"])
        if self.popart and state.get("popart") is not None:
            self.popart_mean[k], self.popart_sq[k] = float(state["popart"]["mean"]), float(state["popart"]["sq_mean"])
        self.hps[k].update({n: v for n, v in state["hparams"].items() if n in MUTABLE})
        self._widths_loaded(k)
        self.reward_scalers[k].gamma = self.hps[k]["gamma"]
        self.updates[k], self.target_updates[k] = int(state["updates"]), int(state["target_updates"])
        self.env_steps[k] = int(state["env_steps"])
        self._state_loaded(k, state)

    def set_hparams(self, k: int, hparams: dict[str, Any]) -> None:
        check_mutable_values({**self.hps[k], **hparams})
        super().set_hparams(k, hparams)

    # ---------------------------------------------------------------- learning
    def _learn(self, members: list[int], pos: list[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        dev, kk = self.device, len(members)
        hps = [self.hps[m] for m in members]
        hp0 = hps[0]
        sel = np.asarray(pos)
        T, _, N = ro["rewards"].shape
        batch = T * N
        obs = self.normalized_obs(sel, ro, "obs")
        next_obs = self.normalized_obs(sel, ro, "next_obs")
        rewards = torch.as_tensor(self.scaled_rewards(members, sel, ro), device=dev)        # [T, K, N]
        term = torch.as_tensor(ro["terminated"][:, sel], device=dev)
        trunc = torch.as_tensor(ro["truncated"][:, sel], device=dev)
        actions = torch.as_tensor(member_major(ro["actions"], sel), device=dev)
        valid = None if ro["valid"] is None else torch.as_tensor(member_major(ro["valid"], sel), device=dev)
        idx = torch.as_tensor(members, device=dev)
        flat = self.net.flat[idx].clone()
        target = self.target_flat[idx].clone()
        m_sub, v_sub, st_sub = self.exp_avg[idx].clone(), self.exp_avg_sq[idx].clone(), self.adam_steps[idx].clone()
        duals = self.duals[idx].clone()
        dm, dv, dst = self.dual_m[idx].clone(), self.dual_v[idx].clone(), self.dual_steps[idx].clone()
        gamma = torch.as_tensor([float(h["gamma"]) for h in hps], device=dev).reshape(kk, 1)
        lr = torch.as_tensor([float(h["lr"]) for h in hps], dtype=torch.float64, device=dev)
        dual_lr = torch.as_tensor([self._dual_lr(m) for m in members], dtype=torch.float64, device=dev)
        eps_eta = torch.as_tensor([float(h["eps_eta"]) for h in hps], device=dev)
        max_norm = torch.as_tensor([math.inf if h["max_grad_norm"] is None else float(h["max_grad_norm"]) for h in hps],
                                   device=dev)
        n_step = T if hp0["n_step"] is None else int(hp0["n_step"])
        mb = int(min(hp0["minibatch_size"], batch))
        period = int(hp0["target_period"])
        updates = np.asarray([self.updates[m] for m in members])
        t_updates = np.asarray([self.target_updates[m] for m in members])
        off_units = self.grad_mask(members)  # members narrower than `hidden`: their off units take no step
        last: dict[str, torch.Tensor] = {}
        targets = None
        p = self.net.views(flat)  # views of `flat`: each Adam step (and PopArt's rescaling) moves them in place
        for epoch in range(int(hp0["epochs"])):
            with torch.no_grad():
                next_v = self._unnormalised_value(next_obs, flat, members)                  # [K, T*N]
                next_v = next_v.reshape(kk, T, N).transpose(0, 1)
                targets = nstep_targets(rewards, next_v, term, trunc, gamma, n_step)         # [T, K, N]
                targets = targets.transpose(0, 1).reshape(kk, batch)
            if self.popart and epoch == 0:
                self._popart_update(targets, flat, members, valid)
                # the statistics stay put for the rest of the update: loss and advantages in normalised units
                sel_m = np.asarray(members)
                pop_mean = torch.as_tensor(self.popart_mean[sel_m], dtype=targets.dtype, device=dev).unsqueeze(1)
                pop_std = torch.as_tensor(self._popart_std(sel_m), dtype=targets.dtype, device=dev).unsqueeze(1)
            perm = torch.as_tensor(np.stack([self.rngs[m].permutation(batch) for m in members]), device=dev)
            sh_obs, sh_act, sh_tgt = (gather_rows(x, perm) for x in (obs, actions, targets))
            sh_val = None if valid is None else gather_rows(valid, perm)
            for start in range(0, batch - mb + 1, mb):
                o, a, g = (x[:, start:start + mb] for x in (sh_obs, sh_act, sh_tgt))
                w = None if sh_val is None else sh_val[:, start:start + mb]
                raw = duals.detach().clone().requires_grad_(True)  # the metrics keep the pre-step values

                def loss_fn(pp, values, o=o, a=a, g=g, w=w, raw=raw):
                    if self.popart:
                        g = (g - pop_mean) / pop_std
                    mu, log_std = pp
                    logprob, entropy = log_prob_entropy(mu, log_std, a, self.net.discrete)
                    mult = multiplier_value(raw, self.dual_scheme)
                    loss, metrics = vmpo_loss_members(logprob, values, g, mult[:, 0], eps_eta,
                                                      self._kl_constraints(o, mu, log_std, target, mult, hp0), w)
                    return loss.sum(), (metrics, entropy)

                grad_p, (grad_d,), (metrics, entropy) = self.net.loss_grad(o, p, loss_fn, [raw])
                if off_units is not None:
                    grad_p.mul_(off_units)
                clip_grad_norm_per_member(grad_p, max_norm, self.critic_cols)
                clip_grad_norm_per_member(grad_p, max_norm, self.policy_cols)
                adam_step(flat, grad_p, m_sub, v_sub, st_sub, lr, eps=DUAL_EPS)
                adam_step(duals, grad_d, dm, dv, dst, dual_lr, eps=DUAL_EPS)
                if self.dual_scheme == "paper":
                    project_multipliers_(duals)
                updates += 1
                refresh = updates % period == 0
                if refresh.any():
                    r = torch.as_tensor(refresh, device=dev)
                    target = torch.where(r.unsqueeze(1), flat, target)
                    t_updates += refresh
                metrics["entropy"] = valid_mean(entropy.detach(), w)
                last = metrics
        with torch.no_grad():
            self.net.flat[idx] = flat
            self.target_flat[idx] = target
            self.exp_avg[idx], self.exp_avg_sq[idx], self.adam_steps[idx] = m_sub, v_sub, st_sub
            self.duals[idx], self.dual_m[idx], self.dual_v[idx], self.dual_steps[idx] = duals, dm, dv, dst
            ev = self._explained_variance(obs, targets, flat, members, valid)
        names = list(last)
        host = torch.stack([last[k].detach().reshape(kk) for k in names]).double().cpu().numpy()  # one copy
        out = []
        for i, m in enumerate(members):
            self.updates[m], self.target_updates[m] = int(updates[i]), int(t_updates[i])
            row = {k: float(v) for k, v in zip(names, host[:, i])}
            row["explained_variance"] = ev[i]
            row["lr"] = float(hps[i]["lr"])
            out.append(row)
        return out

    def _unnormalised_value(self, obs: torch.Tensor, flat: torch.Tensor, members: list[int]) -> torch.Tensor:
        v = self.net.value(obs, self.net.views(flat))
        if self.popart:
            sel = np.asarray(members)
            std = torch.as_tensor(self._popart_std(sel), dtype=v.dtype, device=v.device).unsqueeze(1)
            mean = torch.as_tensor(self.popart_mean[sel], dtype=v.dtype, device=v.device).unsqueeze(1)
            v = v * std + mean
        return v

    @torch.no_grad()
    def _popart_update(self, targets: torch.Tensor, flat: torch.Tensor, members: list[int],
                       valid: torch.Tensor | None = None) -> None:
        """PopArt per member (van Hasselt et al. 2016, Algorithm 1): move the statistics (over the valid
        samples: EnvPool's reset slots are not transitions), rescale the head so its unnormalised outputs
        are unchanged."""
        sel = np.asarray(members)
        old_mean, old_std = self.popart_mean[sel].copy(), self._popart_std(sel)
        b = float(self.hps[members[0]]["popart_beta"])
        t64 = targets.double()
        self.popart_mean[sel] = (1 - b) * self.popart_mean[sel] + b * valid_mean(t64, valid).cpu().numpy()
        self.popart_sq[sel] = (1 - b) * self.popart_sq[sel] + b * valid_mean(t64.pow(2), valid).cpu().numpy()
        new_std = self._popart_std(sel)
        p = self.net.views(flat)
        w, bias = p[self.head + ".weight"], p[self.head + ".bias"]
        tt = lambda a: torch.as_tensor(a, dtype=flat.dtype, device=flat.device)  # noqa: E731
        w.mul_(tt(old_std / new_std).reshape(-1, 1, 1))
        bias.mul_(tt(old_std).reshape(-1, 1)).add_(tt(old_mean - self.popart_mean[sel]).reshape(-1, 1)).div_(
            tt(new_std).reshape(-1, 1))

    def _kl_constraints(self, obs, mu, log_std, target, mult, hp) -> list[KLConstraint]:
        with torch.no_grad():
            a_old, b_old = self.net.policy_params(obs, self.net.views(target))
        if self.net.discrete:
            return [KLConstraint("pi", categorical_kl(mu, a_old), mult[:, 1], float(hp["eps_alpha"]))]
        std, std_old = log_std.exp(), b_old.exp()
        return [KLConstraint("mu", gaussian_mean_kl(mu, a_old, std_old), mult[:, 1], float(hp["eps_alpha_mu"])),
                KLConstraint("sigma", gaussian_cov_kl(std, std_old), mult[:, 2], float(hp["eps_alpha_sigma"]))]

    @torch.no_grad()
    def _explained_variance(self, obs, targets, flat, members, valid=None) -> list[float]:
        """``1 - Var(targets - V) / Var(targets)`` per member, over the valid samples."""
        v = self._unnormalised_value(obs, flat, members)

        def variance(x: torch.Tensor) -> torch.Tensor:
            return valid_mean((x - valid_mean(x, valid).unsqueeze(-1)).pow(2), valid)

        var, resid = torch.stack([variance(targets), variance(targets - v)]).double().cpu().numpy()  # one copy
        return [float("nan") if var[i] <= 0 else 1.0 - float(resid[i]) / float(var[i]) for i in range(len(members))]
