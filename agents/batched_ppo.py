"""PPO for K population members at once: one process, one batched policy, one batched update.

rlpop's PPO (hyperparameters: :mod:`rlpop.agents.ppo`; losses:
:mod:`rlpop.agents.ppo_loss`); a single run is a population of one. Member
``k`` learns as it would alone with its own hyperparameters and seed, but the
K members' weights, Adam moments and statistics are stacked along a member dimension
(:mod:`rlpop.agents.stacked`): acting is one forward pass for all members'
envs, an update is one ``baddbmm`` per layer for all members' minibatches.
A member's state (:meth:`BatchedPPO.get_state`) is what checkpoints, copies and
exported policies read.

Per-member hyperparameters broadcast as ``[K, 1]`` tensors: ``lr``, ``clip``,
``ent_coef``, ``vf_coef``, ``gae_lambda``, ``gamma``, ``max_grad_norm`` (each
member's gradient clipped by its own norm), ``vf_clip``. ``epochs`` batch by
masking (a member whose epochs are done sits out the remaining iterations:
no Adam step, parameters untouched). ``minibatch_size`` changes the shape of
an iteration, so members are grouped by it: each group of equal minibatch
size updates as one batch, one group after the other.

The collect-and-learn loop, batched acting and the env bank are
:class:`rlpop.agents.batched_base.BatchedLearner`'s.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, ClassVar

import numpy as np
import torch

from rlpop import streams
from rlpop.agents.batched_base import BatchedLearner, gather_rows, member_major
from rlpop.agents.ppo import DEFAULTS, MUTABLE, check_layout, hparam_rules  # noqa: F401 (spec-time rules, found here)
from rlpop.agents.networks import log_prob_entropy
from rlpop.agents.ppo_loss import clipped_surrogate_loss, gae, normalize_advantages, value_loss, weighted_mean
from rlpop.agents.stacked import adam_member_state, adam_step, clip_grad_norm_per_member, load_adam_member


class BatchedPPO(BatchedLearner):
    """``BatchedPPO(env_id, [hparams per member], [seed per member])``."""

    NAME: ClassVar[str] = "PPO"
    DEFAULTS: ClassVar[dict[str, Any]] = DEFAULTS
    MUTABLE: ClassVar[frozenset[str]] = MUTABLE
    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE
    SHARED: ClassVar[tuple[str, ...]] = ("rollout_steps", "num_actors", "envs_per_actor", "hidden", "init_log_std",
                                         "norm_obs", "norm_reward", "device", "torch_threads", "env_backend", "overlap")

    def __init__(self, env_id, hparams, seeds, env_kwargs=None, update_threads=None):
        super().__init__(env_id, hparams, seeds, env_kwargs, update_threads)
        self.exp_avg = torch.zeros_like(self.net.flat)     # Adam moments, one row per member
        self.exp_avg_sq = torch.zeros_like(self.net.flat)
        self.adam_steps = torch.zeros(self.k, dtype=torch.float64, device=self.device)

    def get_state(self, k: int) -> dict[str, Any]:
        """Member ``k``'s state: weights, Adam state (torch.optim.Adam's format), normalisers, hparams, streams."""
        return {
            "net": self.net.member_state_dict(k),
            "opt": adam_member_state(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k, self.hps[k]["lr"]),
            "obs_rms": self.obs_rms[k].state(),
            "reward_scaler": self.reward_scalers[k].state(),
            "hparams": dict(self.hps[k]),
            streams.KEY: self.stream_state(k),
            "updates": self.updates[k],
            "env_steps": self.env_steps[k],
        }

    def set_state(self, k: int, state: dict[str, Any]) -> None:
        """Replace member ``k``'s weights, optimiser, normalisers and hparams; its envs start fresh episodes (a state without
        ``streams`` is a copy: the member starts its next stream epoch; its own checkpoint continues its streams)."""
        self.net.load_member(k, state["net"])
        load_adam_member(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k, state["opt"])
        self.obs_rms[k].load(state["obs_rms"])
        self.reward_scalers[k].load(state["reward_scaler"])
        self.hps[k].update({n: v for n, v in state["hparams"].items() if n in MUTABLE})
        self._widths_loaded(k)
        self.reward_scalers[k].gamma = self.hps[k]["gamma"]
        self.updates[k], self.env_steps[k] = int(state["updates"]), int(state["env_steps"])
        self._state_loaded(k, state)

    def _learn(self, members: list[int], pos: list[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        groups: dict[int, list[int]] = defaultdict(list)  # minibatch size -> indices into `members`
        for i, m in enumerate(members):
            groups[int(self.hps[m]["minibatch_size"])].append(i)
        out: list[dict[str, float]] = [{} for _ in members]
        for idx in groups.values():
            metrics = self._update_group([members[i] for i in idx], [pos[i] for i in idx], ro)
            for i, mt in zip(idx, metrics):
                out[i] = mt
        for m in members:
            self.updates[m] += 1
        return out

    def _update_group(self, mem: list[int], pos: list[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        dev, kk = self.device, len(mem)
        hps = [self.hps[m] for m in mem]
        T, _, N = ro["rewards"].shape
        batch = T * N
        sel = np.asarray(pos)

        obs = self.normalized_obs(sel, ro, "obs")
        next_obs = self.normalized_obs(sel, ro, "next_obs")
        rewards_tkn = self.scaled_rewards(mem, sel, ro)
        idx = torch.as_tensor(mem, device=dev)
        flat = self.net.flat[idx].clone()     # the group's parameters [K', P]: updated here, written back after
        with torch.no_grad():
            p0 = self.net.views(flat)
            values = self.net.value(obs, p0)          # [K', T*N]
            next_values = self.net.value(next_obs, p0)
        v_tkn = values.cpu().numpy().reshape(kk, T, N).transpose(1, 0, 2)
        nv_tkn = next_values.cpu().numpy().reshape(kk, T, N).transpose(1, 0, 2)
        col = lambda name: np.asarray([h[name] for h in hps], np.float32).reshape(kk, 1)  # noqa: E731
        adv, ret = gae(rewards_tkn, v_tkn, nv_tkn, ro["terminated"][:, sel], ro["truncated"][:, sel],
                       col("gamma"), col("gae_lambda"))
        to_km = lambda a: torch.as_tensor(np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(kk, batch), device=dev)  # noqa: E731
        data = {"obs": obs, "act": torch.as_tensor(member_major(ro["actions"], sel), device=dev),
                "logp": torch.as_tensor(member_major(ro["logprobs"], sel), device=dev),
                "adv": to_km(adv), "ret": to_km(ret), "val": values}
        if ro["valid"] is not None:
            data["w"] = torch.as_tensor(member_major(ro["valid"], sel).astype(np.float32), device=dev)
        t = lambda name: torch.as_tensor([float(h[name]) for h in hps], dtype=torch.float32, device=dev)  # noqa: E731
        clip, ent_coef, vf_coef = t("clip").unsqueeze(1), t("ent_coef"), t("vf_coef")
        vf_clip = torch.as_tensor([float(h["vf_clip"]) if h["vf_clip"] else float("inf") for h in hps],
                                  device=dev).unsqueeze(1)
        max_norm = torch.as_tensor([math.inf if h["max_grad_norm"] is None else float(h["max_grad_norm"])
                                    for h in hps], dtype=torch.float32, device=dev)  # None: no clipping
        lr = torch.as_tensor([float(h["lr"]) for h in hps], dtype=torch.float64, device=dev)
        epochs = [int(h["epochs"]) for h in hps]
        mb = int(min(hps[0]["minibatch_size"], batch))
        m_sub, v_sub, steps_sub = self.exp_avg[idx].clone(), self.exp_avg_sq[idx].clone(), self.adam_steps[idx].clone()
        off_units = self.grad_mask(mem)  # members narrower than `hidden`: their off units take no step
        kl_sum, cf_sum, n_it = (torch.zeros(kk, device=dev) for _ in range(3))
        last = {k: torch.zeros(kk, device=dev) for k in ("pg", "v", "ent")}
        identity = np.arange(batch)
        p = self.net.views(flat)  # views of `flat`: each Adam step below moves them in place
        shuffled: dict[str, torch.Tensor] = {}  # one gather per epoch into the same buffers
        for e in range(max(epochs)):
            act_mask = [e < ep for ep in epochs]
            active = None if all(act_mask) else torch.as_tensor(act_mask, device=dev)
            perm = torch.as_tensor(np.stack([self.rngs[m].permutation(batch) if act_mask[i] else identity
                                             for i, m in enumerate(mem)]), device=dev)
            shuffled = {key: gather_rows(v, perm, shuffled.get(key)) for key, v in data.items()}  # then slices
            for start in range(0, batch, mb):
                d = {key: v[:, start:start + mb] for key, v in shuffled.items()}
                w = d.get("w")  # EnvPool's reset slots carry no transition: weighted out of every mean
                nadv = normalize_advantages(d["adv"], w)

                def loss_fn(pp, values, d=d, w=w, nadv=nadv):
                    logp, entropy = log_prob_entropy(*pp, d["act"], self.net.discrete)
                    pg_l, kl, cf = clipped_surrogate_loss(logp, d["logp"], nadv, clip, w)
                    v_l = value_loss(values, d["val"], d["ret"], vf_clip, w)
                    ent = weighted_mean(entropy, w)
                    loss = pg_l - ent_coef * ent + vf_coef * v_l   # [K']: member k's loss, as alone
                    return loss.sum() if active is None else (loss * active).sum(), (pg_l, v_l, ent, kl, cf)

                grad, _, (pg_l, v_l, ent, kl, cf) = self.net.loss_grad(d["obs"], p, loss_fn)
                if off_units is not None:
                    grad.mul_(off_units)
                clip_grad_norm_per_member(grad, max_norm)
                adam_step(flat, grad, m_sub, v_sub, steps_sub, lr, active)
                af = torch.ones(kk, device=dev) if active is None else active.float()
                kl_sum += kl * af
                cf_sum += cf * af
                n_it += af
                for key, val in (("pg", pg_l), ("v", v_l), ("ent", ent)):
                    last[key] = val.detach() if active is None else torch.where(active, val.detach(), last[key])
        with torch.no_grad():
            self.net.flat[idx] = flat
            self.exp_avg[idx] = m_sub
            self.exp_avg_sq[idx] = v_sub
            self.adam_steps[idx] = steps_sub
        n_safe = n_it.clamp(min=1)
        host = torch.stack([last["pg"], last["v"], last["ent"], torch.where(n_it > 0, kl_sum / n_safe, 0.0),
                            torch.where(n_it > 0, cf_sum / n_safe, 0.0)]).double().cpu().numpy()  # one copy
        out = []
        for i in range(kk):
            r_i, v_i = ret[:, i].reshape(-1), v_tkn[:, i].reshape(-1)
            if ro["valid"] is not None:  # EnvPool's reset slots are not transitions
                keep = ro["valid"][:, sel[i]].reshape(-1)
                r_i, v_i = r_i[keep], v_i[keep]
            var_y = np.var(r_i)
            pg, vl, ent, kl, cf = (float(x) for x in host[:, i])
            out.append({
                "policy_loss": pg, "value_loss": vl, "entropy": ent, "approx_kl": kl, "clip_frac": cf,
                "explained_variance": float(1 - np.var(r_i - v_i) / var_y) if var_y > 0 else float("nan"),
                "lr": float(hps[i]["lr"]),
            })
        return out
