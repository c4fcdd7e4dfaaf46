"""PPO for K population members at once: one process, one batched policy, one batched update.

Member ``k`` is exactly the learner :class:`rlpop.agents.ppo.PPO` would be with
its own hyperparameters and seed -- same network init, same losses, same
normalisers, same minibatch permutations -- but the K members' weights, Adam
moments and statistics are stacked along a member dimension
(:mod:`rlpop.agents.stacked`): acting is one forward pass for all members'
envs, an update is one ``baddbmm`` per layer for all members' minibatches.
A member's state (:meth:`BatchedPPO.get_state`) has the same format as
``PPO.get_state()``, so checkpoints and copies work across engines.

Per-member hyperparameters broadcast as ``[K, 1]`` tensors: ``lr``, ``clip``,
``ent_coef``, ``vf_coef``, ``gae_lambda``, ``gamma``, ``max_grad_norm`` (each
member's gradient clipped by its own norm), ``vf_clip``. ``epochs`` batch by
masking (a member whose epochs are done sits out the remaining iterations:
no Adam step, parameters untouched). ``minibatch_size`` changes the shape of
an iteration, so members are grouped by it: each group of equal minibatch
size updates as one batch, one group after the other.

Envs come from a bank (:mod:`rlpop.agents.envbank`): EnvPool's C++ threads for
the MuJoCo envs it provides, gymnasium vector envs otherwise. Members that are
not trained in a call (an idle evaluator, a member at its budget) step no env
and take no update.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, Callable, ClassVar, Sequence

import gymnasium as gym
import numpy as np
import torch

from rlpop.agents.base import TrainResult, check_mutable, resolve_hparams
from rlpop.agents.envbank import make_bank
from rlpop.agents.normalize import RewardScaler, RunningMeanStd
from rlpop.agents.pool_learner import pick_device
from rlpop.agents.ppo import DEFAULTS, MUTABLE
from rlpop.agents.ppo_loss import clipped_surrogate_loss, gae, normalize_advantages, value_loss
from rlpop.agents.stacked import (StackedActorCritic, adam_member_state, adam_step, clip_grad_norm_per_member,
                                  load_adam_member)

#: hyperparameters every member of one batch must share (they fix shapes, envs or processes)
SHARED = ("rollout_steps", "num_actors", "envs_per_actor", "hidden", "init_log_std", "norm_obs", "norm_reward",
          "device", "torch_threads", "env_backend")


def _normalize(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """rlpop.agents.normalize.normalize_obs with per-member statistics: obs ``[K, ..., D]``, mean/var ``[K, D]``."""
    shape = (mean.shape[0],) + (1,) * (obs.ndim - 2) + (mean.shape[1],)
    return np.clip((obs - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-8), -clip, clip).astype(np.float32)


def _masked_mean(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return x.mean(-1) if w is None else (x * w).sum(-1) / w.sum(-1).clamp(min=1.0)


class BatchedPPO:
    """``BatchedPPO(env_id, [hparams per member], [seed per member])``."""

    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE

    def __init__(self, env_id: str, hparams: Sequence[dict[str, Any]], seeds: Sequence[int],
                 env_kwargs: dict[str, Any] | None = None, update_threads: int | None = None):
        if len(hparams) != len(seeds) or not seeds:
            raise ValueError("BatchedPPO: give one hparams dict and one seed per member (at least one)")
        self.hps = [resolve_hparams("PPO", DEFAULTS, h) for h in hparams]
        for hp in self.hps:
            hp["hidden"] = tuple(hp["hidden"])
        for name in SHARED:
            values = {repr(hp[name]) for hp in self.hps}
            if len(values) > 1:
                raise ValueError(f"agent.hparams.{name}: members of one batch must share it (got {sorted(values)}); "
                                 "set it in agent.hparams, not in the search space")
        hp0 = self.hps[0]
        self.k = len(seeds)
        self.env_id = env_id
        self.seeds = [int(s) for s in seeds]
        self._env_kwargs = dict(env_kwargs or {})
        if hp0["torch_threads"]:
            torch.set_num_threads(int(hp0["torch_threads"]))
        self.device = pick_device(hp0["device"])
        # collection runs beside the env threads on one torch thread; an update has the cores to itself
        self.collect_threads = int(hp0["torch_threads"] or 1)
        self.update_threads = max(self.collect_threads, int(update_threads or 1))
        self.num_envs = max(1, hp0["num_actors"]) * hp0["envs_per_actor"]
        if hp0["rollout_steps"] % self.num_envs:
            raise ValueError(f"PPO: rollout_steps={hp0['rollout_steps']} must be a multiple of the number "
                             f"of envs (num_actors x envs_per_actor = {self.num_envs})")
        self.bank = make_bank(env_id, self._env_kwargs, [s + 7919 for s in self.seeds], self.num_envs,
                              hp0["env_backend"], num_actors=hp0["num_actors"])
        self.observation_space = self.bank.single_observation_space
        self.action_space = self.bank.single_action_space
        if isinstance(self.action_space, gym.spaces.Box):
            self.action_space = gym.spaces.Box(self.action_space.low.astype(np.float32),
                                               self.action_space.high.astype(np.float32), dtype=np.float32)
        self.box = isinstance(self.action_space, gym.spaces.Box)
        self.net = StackedActorCritic(self.observation_space, self.action_space, hp0["hidden"], hp0["init_log_std"],
                                      self.seeds, self.device)
        self.exp_avg = torch.zeros_like(self.net.flat)     # Adam moments, one row per member
        self.exp_avg_sq = torch.zeros_like(self.net.flat)
        self.adam_steps = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        self.obs_rms = [RunningMeanStd(self.observation_space.shape) for _ in range(self.k)]
        self.reward_scalers = [RewardScaler(self.num_envs, hp["gamma"]) for hp in self.hps]
        self.rngs = [np.random.default_rng(s) for s in self.seeds]
        self.generator = torch.Generator().manual_seed(self.seeds[0])
        self.updates = [0] * self.k
        self.env_steps = [0] * self.k
        self._ep_ret = np.zeros((self.k, self.num_envs))
        self._ep_len = np.zeros((self.k, self.num_envs), np.int64)

    # ---------------------------------------------------------------- per-member protocol
    def get_hparams(self, k: int) -> dict[str, Any]:
        return dict(self.hps[k])

    def set_hparams(self, k: int, hparams: dict[str, Any]) -> None:
        check_mutable("PPO", hparams, self.hps[k], MUTABLE)
        self.hps[k].update(hparams)
        self.reward_scalers[k].gamma = self.hps[k]["gamma"]

    def get_state(self, k: int) -> dict[str, Any]:
        """Member ``k``'s state, in the format of ``PPO.get_state()``."""
        return {
            "net": self.net.member_state_dict(k),
            "opt": adam_member_state(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k,
                                     self.hps[k]["lr"]),
            "obs_rms": self.obs_rms[k].state(),
            "reward_scaler": self.reward_scalers[k].state(),
            "hparams": dict(self.hps[k]),
            "rng": copy.deepcopy(self.rngs[k].bit_generator.state),
            "torch_rng": self.generator.get_state(),
            "updates": self.updates[k],
            "env_steps": self.env_steps[k],
        }

    def set_state(self, k: int, state: dict[str, Any]) -> None:
        """Replace member ``k``'s weights, optimiser, normalisers and hparams; its envs start fresh episodes."""
        self.net.load_member(k, state["net"])
        load_adam_member(self.net, self.exp_avg, self.exp_avg_sq, self.adam_steps, k, state["opt"])
        self.obs_rms[k].load(state["obs_rms"])
        self.reward_scalers[k].load(state["reward_scaler"])
        self.hps[k].update({n: v for n, v in state["hparams"].items() if n in MUTABLE})
        self.reward_scalers[k].gamma = self.hps[k]["gamma"]
        self.rngs[k].bit_generator.state = copy.deepcopy(state["rng"])
        self.updates[k], self.env_steps[k] = int(state["updates"]), int(state["env_steps"])
        self.restart_episodes([k])

    def copy_member(self, src: int, dst: int) -> None:
        """``dst`` takes ``src``'s state: a slice copy within the stacks."""
        self.set_state(dst, self.get_state(src))

    def restart_episodes(self, members: Sequence[int]) -> None:
        self.bank.reset(list(members))
        self._ep_ret[list(members)] = 0.0
        self._ep_len[list(members)] = 0

    # ---------------------------------------------------------------- training
    def train(self, members: Sequence[int], steps: int,
              on_update: Callable[[int], None] | None = None) -> dict[int, TrainResult]:
        """Collect and learn, whole rollouts at a time, until each of ``members`` consumed at least ``steps``.
        ``on_update(steps_so_far)`` is called after every update (steps per member)."""
        members = list(members)
        out = {m: TrainResult(0) for m in members}
        if not members:
            return out
        per_env = self.hps[members[0]]["rollout_steps"] // self.num_envs
        done = 0
        while done < steps:
            ro = self.collect(members, per_env)
            metrics = self.learn(members, ro)
            n = per_env * self.num_envs
            for i, m in enumerate(members):
                r = out[m]
                r.steps += n
                r.episode_returns += ro["episode_returns"][i]
                r.metrics = metrics[i]
                r.updates.append({**metrics[i], "steps": n, "update": self.updates[m]})
            done += n
            if on_update is not None:
                on_update(done)
        for m in members:
            self.env_steps[m] += out[m].steps
        return out

    def _obs_stats(self, members: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.hps[members[0]]["norm_obs"]:
            return None
        return (np.stack([self.obs_rms[m].mean for m in members]), np.stack([self.obs_rms[m].var for m in members]))

    @torch.no_grad()
    def collect(self, members: Sequence[int], steps_per_env: int) -> dict[str, Any]:
        """``steps_per_env`` steps of every env of ``members``; arrays time-major ``[T, K', N, ...]``."""
        members = list(members)
        kk, n, dev = len(members), self.num_envs, self.device
        stats = self._obs_stats(members)
        idx = torch.as_tensor(members, device=dev)
        p = self.net.views(self.net.flat[idx])  # the acting weights, gathered once per rollout
        obs = self.bank.observe(members)
        fresh = getattr(self.bank, "restarted", None)
        if fresh:  # the bank started new episodes for some members: their partial returns are void
            self._ep_ret[list(fresh)] = 0.0
            self._ep_len[list(fresh)] = 0
            fresh.clear()
        T = steps_per_env
        obs_buf = np.empty((T, kk, n, *obs.shape[2:]), np.float32)
        next_buf = np.empty_like(obs_buf)
        rew = np.empty((T, kk, n), np.float32)
        term = np.empty((T, kk, n), bool)
        trunc = np.empty((T, kk, n), bool)
        valid = np.ones((T, kk, n), bool)
        logp_buf = np.empty((T, kk, n), np.float32)
        act_buf = None
        returns: list[list[float]] = [[] for _ in members]
        ep_ret, ep_len = self._ep_ret[members], self._ep_len[members]
        any_invalid = False
        for t in range(T):
            obs_buf[t] = obs
            x = obs.astype(np.float32) if stats is None else _normalize(obs, *stats)
            action, logp = self._act(torch.as_tensor(x, device=dev), p)
            action = action.cpu().numpy()
            if act_buf is None:
                act_buf = np.empty((T, *action.shape), action.dtype)
            act_buf[t] = action
            logp_buf[t] = logp.cpu().numpy()
            env_action = np.clip(action, self.action_space.low, self.action_space.high) if self.box else action
            st = self.bank.step(members, env_action)
            rew[t], term[t], trunc[t], next_buf[t] = st.reward, st.terminated, st.truncated, st.next_obs
            if st.valid is not None:
                valid[t] = st.valid
                any_invalid = True
            ep_ret += st.reward
            ep_len += 1 if st.valid is None else st.valid
            done = st.terminated | st.truncated
            if done.any():
                for i, j in zip(*np.nonzero(done)):
                    returns[i].append(float(ep_ret[i, j]))
                ep_ret[done] = 0.0
                ep_len[done] = 0
            obs = st.obs
        self._ep_ret[members], self._ep_len[members] = ep_ret, ep_len
        return {"obs": obs_buf, "actions": act_buf, "logprobs": logp_buf, "rewards": rew, "terminated": term,
                "truncated": trunc, "next_obs": next_buf, "valid": valid if any_invalid else None,
                "episode_returns": returns, "stats": stats}

    def _act(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.net.policy_params(x, p)
        if self.net.discrete:
            logp_all = torch.log_softmax(a, -1)
            flat = logp_all.reshape(-1, logp_all.shape[-1]).exp().cpu()
            action = torch.multinomial(flat, 1, generator=self.generator).reshape(a.shape[:-1]).to(a.device)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        noise = torch.randn(a.shape, generator=self.generator, dtype=a.dtype).to(a.device)
        action = a + b.exp() * noise
        from rlpop.agents.networks import log_prob_entropy

        return action, log_prob_entropy(a, b, action, False)[0]

    def learn(self, members: Sequence[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        """One PPO update of each of ``members`` on its slice of the rollout; returns each one's diagnostics."""
        members = list(members)
        torch.set_num_threads(self.update_threads)
        try:
            return self._learn(members, ro)
        finally:
            torch.set_num_threads(self.collect_threads)

    def _learn(self, members: list[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        groups: dict[int, list[int]] = defaultdict(list)  # minibatch size -> positions in `members`
        for i, m in enumerate(members):
            groups[int(self.hps[m]["minibatch_size"])].append(i)
        out: list[dict[str, float]] = [{} for _ in members]
        # observation statistics move after the rollout was normalised with the old ones (as PPO does)
        for pos_list in groups.values():
            metrics = self._update_group([members[i] for i in pos_list], pos_list, ro)
            for i, mt in zip(pos_list, metrics):
                out[i] = mt
        if self.hps[members[0]]["norm_obs"]:
            T, _, n = ro["rewards"].shape
            for i, m in enumerate(members):
                self.obs_rms[m].update(ro["obs"][:, i].reshape(T * n, -1))
        for m in members:
            self.updates[m] += 1
        return out

    def _update_group(self, mem: list[int], pos: list[int], ro: dict[str, Any]) -> list[dict[str, float]]:
        dev, kk = self.device, len(mem)
        hps = [self.hps[m] for m in mem]
        T, _, N = ro["rewards"].shape
        batch = T * N
        sel = np.asarray(pos)
        stats = ro["stats"]

        def member_major(a: np.ndarray) -> np.ndarray:  # [T, K, N, ...] -> [K, T*N, ...]
            a = a[:, sel]
            return np.ascontiguousarray(np.moveaxis(a, 1, 0)).reshape(kk, batch, *a.shape[3:])

        raw_obs = member_major(ro["obs"])
        raw_next = member_major(ro["next_obs"])
        if stats is not None:
            st = (stats[0][sel], stats[1][sel])
            obs_np, next_np = _normalize(raw_obs, *st), _normalize(raw_next, *st)
        else:
            obs_np, next_np = raw_obs.astype(np.float32), raw_next.astype(np.float32)
        obs = torch.as_tensor(obs_np, device=dev)
        next_obs = torch.as_tensor(next_np, device=dev)
        rewards_tkn = ro["rewards"][:, sel]
        dones_tkn = ro["terminated"][:, sel] | ro["truncated"][:, sel]
        if hps[0]["norm_reward"]:
            rewards_tkn = np.stack([self.reward_scalers[m].scale(rewards_tkn[:, i], dones_tkn[:, i])
                                    for i, m in enumerate(mem)], 1)
        else:
            rewards_tkn = rewards_tkn.astype(np.float32)
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
        data = {"obs": obs, "act": torch.as_tensor(member_major(ro["actions"]), device=dev),
                "logp": torch.as_tensor(member_major(ro["logprobs"]), device=dev),
                "adv": to_km(adv), "ret": to_km(ret), "val": values}
        if ro["valid"] is not None:
            data["w"] = torch.as_tensor(member_major(ro["valid"]).astype(np.float32), device=dev)
        t = lambda name: torch.as_tensor([float(h[name]) for h in hps], dtype=torch.float32, device=dev)  # noqa: E731
        clip, ent_coef, vf_coef = t("clip").unsqueeze(1), t("ent_coef"), t("vf_coef")
        vf_clip = torch.as_tensor([float(h["vf_clip"]) if h["vf_clip"] else float("inf") for h in hps],
                                  device=dev).unsqueeze(1)
        max_norm = t("max_grad_norm")
        lr = torch.as_tensor([float(h["lr"]) for h in hps], dtype=torch.float64, device=dev)
        epochs = [int(h["epochs"]) for h in hps]
        mb = int(min(hps[0]["minibatch_size"], batch))
        m_sub, v_sub, steps_sub = self.exp_avg[idx].clone(), self.exp_avg_sq[idx].clone(), self.adam_steps[idx].clone()
        rows = torch.arange(kk, device=dev).unsqueeze(1)
        kl_sum, cf_sum, n_it = (torch.zeros(kk, device=dev) for _ in range(3))
        last = {k: torch.zeros(kk, device=dev) for k in ("pg", "v", "ent")}
        identity = np.arange(batch)
        for e in range(max(epochs)):
            act_mask = [e < ep for ep in epochs]
            active = None if all(act_mask) else torch.as_tensor(act_mask, device=dev)
            perm = torch.as_tensor(np.stack([self.rngs[m].permutation(batch) if act_mask[i] else identity
                                             for i, m in enumerate(mem)]), device=dev)
            shuffled = {key: v[rows, perm] for key, v in data.items()}  # one gather per epoch, then slices
            for start in range(0, batch, mb):
                d = {key: v[:, start:start + mb] for key, v in shuffled.items()}
                w = d.get("w")
                params = flat.detach().requires_grad_(True)
                p = self.net.views(params)
                logp, entropy = self.net.log_prob_entropy(d["obs"], d["act"], p)
                pg_l, kl, cf = self._policy_loss(logp, d["logp"], d["adv"], clip, w)
                v_l = self._value_loss(self.net.value(d["obs"], p), d["val"], d["ret"], vf_clip, w)
                ent = _masked_mean(entropy, w)
                loss = pg_l - ent_coef * ent + vf_coef * v_l   # [K']: member k's loss, as alone
                (grad,) = torch.autograd.grad(loss.sum() if active is None else (loss * active).sum(), params)
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
        out = []
        for i in range(kk):
            r_i, v_i = ret[:, i].reshape(-1), v_tkn[:, i].reshape(-1)
            var_y = np.var(r_i)
            out.append({
                "policy_loss": float(last["pg"][i]), "value_loss": float(last["v"][i]),
                "entropy": float(last["ent"][i]),
                "approx_kl": float(kl_sum[i] / n_it[i]) if n_it[i] > 0 else 0.0,
                "clip_frac": float(cf_sum[i] / n_it[i]) if n_it[i] > 0 else 0.0,
                "explained_variance": float(1 - np.var(r_i - v_i) / var_y) if var_y > 0 else float("nan"),
                "lr": float(hps[i]["lr"]),
            })
        return out

    @staticmethod
    def _policy_loss(logp, old_logp, adv, clip, w):
        if w is None:
            return clipped_surrogate_loss(logp, old_logp, normalize_advantages(adv), clip)
        # reset slots (EnvPool) carry no transition: weighted statistics over the real ones
        n = w.sum(-1, keepdim=True).clamp(min=1.0)
        mean = (adv * w).sum(-1, keepdim=True) / n
        std = (((adv - mean) ** 2 * w).sum(-1, keepdim=True) / (n - 1).clamp(min=1.0)).sqrt()
        adv_n = (adv - mean) / (std + 1e-8) * w
        log_ratio = logp - old_logp
        ratio = log_ratio.exp()
        obj = torch.max(-adv_n * ratio, -adv_n * torch.clamp(ratio, 1 - clip, 1 + clip))
        with torch.no_grad():
            kl = _masked_mean((ratio - 1) - log_ratio, w)
            cf = _masked_mean(((ratio - 1).abs() > clip).float(), w)
        return _masked_mean(obj, w), kl, cf

    @staticmethod
    def _value_loss(values, old_values, returns, clip, w):
        if w is None:
            return value_loss(values, old_values, returns, clip)
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        return 0.5 * _masked_mean(torch.max((values - returns).pow(2), (clipped - returns).pow(2)), w)

    def close(self) -> None:
        if getattr(self, "bank", None) is not None:
            self.bank.close()
            self.bank = None
