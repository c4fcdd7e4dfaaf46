"""PPO learner fed by actor processes (rlpop's reference learner).

Discrete and Box actions; GAE; clipped surrogate; (clipped) value loss;
entropy bonus; per-minibatch advantage normalisation; observation
normalisation and reward scaling as learner state; orthogonal init; gradient
clipping. The learner runs on CUDA when present (``device="auto"``), the
actors always on CPU. Every hyperparameter in :data:`MUTABLE` is read at each
update, so ``set_hparams`` takes effect on the next update -- the optimiser's
learning rate included.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from rlpop.agents.base import check_mutable
from rlpop.agents.networks import ActorCritic
from rlpop.agents.pool_learner import PoolLearner, check_layout  # noqa: F401 (check_layout: spec-time checks)
from rlpop.agents.ppo_loss import clipped_surrogate_loss, gae, normalize_advantages, value_loss

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
    "num_actors": 0,         # actor processes; 0 = collect in the learner's process
    "envs_per_actor": 1,
    "hidden": (64, 64),
    "init_log_std": 0.0,
    "norm_obs": True,
    "norm_reward": True,
    "device": "auto",
    "torch_threads": 1,
    # the batched engine (rlpop.agents.batched_ppo): how a shard steps its members' envs --
    # "auto" (EnvPool where it provides the env, else gymnasium), "envpool" or "gym"
    "env_backend": "auto",
}
MUTABLE = frozenset({"lr", "clip", "ent_coef", "vf_coef", "gae_lambda", "gamma", "epochs",
                     "minibatch_size", "max_grad_norm", "vf_clip"})


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """What each hyperparameter may be (checked at spec time, search spaces included)."""
    from rlpop.agents import hparam_rules as R
    from rlpop.agents.pool_learner import pool_rules

    return {**pool_rules(hp), "clip": R.positive(0.2), "ent_coef": R.nonnegative(0.01), "vf_coef": R.nonnegative(0.5),
            "gae_lambda": R.unit(0.95), "vf_clip": R.nonnegative(0.2, none_ok=True)}


class PPO(PoolLearner):
    """``PPO(env_id, hparams, seed)`` -- see :data:`DEFAULTS` for the hyperparameters."""

    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE

    def __init__(self, env_id: str, hparams: dict[str, Any] | None = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        net_kwargs = self._setup("PPO", DEFAULTS, hparams, env_id, seed, env_kwargs)
        self.net = self._seeded(lambda: ActorCritic(**net_kwargs)).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.hp["lr"], eps=1e-5)

    # ---------------------------------------------------------------- protocol
    def get_hparams(self) -> dict[str, Any]:
        return dict(self.hp)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        check_mutable("PPO", hparams, self.hp, MUTABLE)
        self.hp.update(hparams)
        self.reward_scaler.gamma = self.hp["gamma"]

    def get_state(self) -> dict[str, Any]:
        return self._base_state()

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace weights, optimiser, normalisers and hparams; actors start fresh episodes."""
        self._load_base_state(state, MUTABLE)
        self._apply_lr()
        self._restart_episodes()

    # ---------------------------------------------------------------- internals
    def actor_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    def learn(self, rollout) -> dict[str, float]:
        return self._update(rollout)

    def _update(self, ro) -> dict[str, float]:
        hp, dev = self.hp, self.device
        T, N = ro.rewards.shape
        obs, next_obs, rewards = self._prepare(ro)
        with torch.no_grad():
            values = self.net.value(obs).cpu().numpy().reshape(T, N)
            next_values = self.net.value(next_obs).cpu().numpy().reshape(T, N)
        adv, ret = gae(rewards, values, next_values, ro.terminated, ro.truncated, hp["gamma"], hp["gae_lambda"])
        b_adv = torch.as_tensor(adv.reshape(-1), device=dev)
        b_ret = torch.as_tensor(ret.reshape(-1), device=dev)
        b_val = torch.as_tensor(values.reshape(-1), device=dev)
        b_logp = torch.as_tensor(ro.logprobs.reshape(-1), device=dev)
        b_act = torch.as_tensor(ro.actions.reshape(T * N, *ro.actions.shape[2:]), device=dev)
        self._apply_lr()
        batch = T * N
        mb = int(min(hp["minibatch_size"], batch))
        vf_clip = hp["vf_clip"] or None
        kls, clipfracs = [], []
        pg_l = v_l = ent = torch.zeros(())
        for _ in range(int(hp["epochs"])):
            perm = torch.as_tensor(self.rng.permutation(batch), device=dev)
            for start in range(0, batch, mb):
                idx = perm[start:start + mb]
                logp, entropy = self.net.log_prob_entropy(obs[idx], b_act[idx])
                pg_l, kl, cf = clipped_surrogate_loss(logp, b_logp[idx], normalize_advantages(b_adv[idx]), hp["clip"])
                v_l = value_loss(self.net.value(obs[idx]), b_val[idx], b_ret[idx], vf_clip)
                ent = entropy.mean()
                loss = pg_l - hp["ent_coef"] * ent + hp["vf_coef"] * v_l
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if hp["max_grad_norm"] is not None:  # None: no clipping (0 is refused by the rules)
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), hp["max_grad_norm"])
                self.opt.step()
                kls.append(kl)
                clipfracs.append(cf)
        self.updates += 1
        var_y = np.var(ret)
        return {
            "policy_loss": float(pg_l.detach()), "value_loss": float(v_l.detach()), "entropy": float(ent.detach()),
            "approx_kl": float(torch.stack(kls).mean()) if kls else 0.0,
            "clip_frac": float(torch.stack(clipfracs).mean()) if clipfracs else 0.0,
            "explained_variance": float(1 - np.var(ret - values) / var_y) if var_y > 0 else float("nan"),
            "lr": float(self.opt.param_groups[0]["lr"]),
        }

