"""CleanPPO: CleanRL-style PPO (one file, plain torch) as an rlpop learner -- the worked example of docs/learners.md.

The algorithm follows CleanRL's ppo.py (separate actor and critic MLPs with orthogonal init, GAE, clipped
surrogate, entropy bonus, per-minibatch advantage normalisation, gradient clipping; no lr annealing: the
population sets lr). Discrete actions, CPU. The only additions are the learner protocol of
``rlpop.agents.base.Learner``: ``train`` / ``get_state`` / ``set_state`` / ``get_hparams`` / ``set_hparams`` /
``close``. Use it as ``Agent("cleanrl_learner:CleanPPO")`` from an experiment file in this folder.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from rlpop.agents.base import TrainResult, check_mutable, nonfinite_training, resolve_hparams

DEFAULTS: dict[str, Any] = {"lr": 2.5e-4, "clip": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "gamma": 0.99,
                            "gae_lambda": 0.95, "epochs": 4, "max_grad_norm": 0.5,  # mutable: read every update
                            "num_envs": 4, "num_steps": 128, "minibatches": 4, "hidden": 64, "torch_threads": 1}  # fixed
MUTABLE = frozenset({"lr", "clip", "ent_coef", "vf_coef", "gamma", "gae_lambda", "epochs", "max_grad_norm"})


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """Optional: valid values, checked before a run starts (search spaces too -- see docs/learners.md)."""
    from rlpop.agents import hparam_rules as R

    return {"lr": R.learning_rate(2.5e-4), "clip": R.positive(0.2), "gamma": R.unit(0.99, lo_open=True),
            "gae_lambda": R.unit(0.95), "epochs": R.integer(1), "num_envs": R.integer(1), "num_steps": R.integer(1)}


def layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.zeros_(lin.bias)
    return lin


class CleanPPO:
    mutable_hparams: ClassVar[frozenset[str]] = MUTABLE
    DEFAULTS: ClassVar[dict[str, Any]] = DEFAULTS
    needs_env: ClassVar[bool] = True  # built as CleanPPO(env_id, hparams, seed=..., env_kwargs=...)

    def __init__(self, env_id: str, hparams: dict[str, Any] | None = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        from rlpop.envs import make_env  # knows rlpop's registry: custom envs work in every process

        self.hp = resolve_hparams("CleanPPO", DEFAULTS, hparams)  # unknown names -> ValueError
        torch.set_num_threads(int(self.hp["torch_threads"]))  # small nets: extra threads only add overhead
        torch.manual_seed(seed)
        n, kw = int(self.hp["num_envs"]), dict(env_kwargs or {})
        self.envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **kw) for _ in range(n)],
                                             autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        if not isinstance(self.envs.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"CleanPPO: {env_id} has {self.envs.single_action_space}; only Discrete actions")
        obs_dim, h = int(np.prod(self.envs.single_observation_space.shape)), int(self.hp["hidden"])
        self.critic = nn.Sequential(layer(obs_dim, h), nn.Tanh(), layer(h, h), nn.Tanh(), layer(h, 1, 1.0))
        self.actor = nn.Sequential(layer(obs_dim, h), nn.Tanh(), layer(h, h), nn.Tanh(),
                                   layer(h, int(self.envs.single_action_space.n), 0.01))
        self.net = nn.ModuleDict({"actor": self.actor, "critic": self.critic})
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.hp["lr"], eps=1e-5)
        self.obs = self._reset(seed)
        self.updates = 0

    def _reset(self, seed: int | None = None) -> torch.Tensor:
        self.ep_ret = np.zeros(self.envs.num_envs)
        obs, _ = self.envs.reset(seed=seed)
        return torch.as_tensor(obs, dtype=torch.float32).reshape(self.envs.num_envs, -1)

    # ------------------------------------------------------------------ the learner protocol
    def train(self, steps: int) -> TrainResult:
        """Whole rollouts of num_envs x num_steps until >= ``steps`` env steps; returns of finished episodes."""
        returns, updates, done = [], [], 0
        while done < steps:
            updates.append(self._rollout_and_update(returns))
            done += updates[-1]["steps"]
        metrics = {k: v for k, v in updates[-1].items() if k != "steps"}
        failed = nonfinite_training(metrics, nn.utils.parameters_to_vector(self.net.parameters()).detach())
        return TrainResult(done, returns, metrics, updates, failed=failed)  # failed: "diverged: ..." or None

    def get_state(self) -> dict[str, Any]:
        """Copies (not views) on the CPU: tensors, numbers, strings, lists, dicts -> torch.load(weights_only=True)."""
        return {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "opt": copy.deepcopy(self.opt.state_dict()), "hparams": dict(self.hp),
                "torch_rng": torch.get_rng_state(), "updates": self.updates}

    def set_state(self, state: dict[str, Any]) -> None:
        """Act and learn like the source from now on; our envs start fresh episodes."""
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(copy.deepcopy(state["opt"]))  # deep copy: never share Adam moments
        self.hp.update({k: v for k, v in state["hparams"].items() if k in MUTABLE})
        torch.set_rng_state(state["torch_rng"])
        self.updates = int(state["updates"])
        self._push_lr()
        self.obs = self._reset()

    def get_hparams(self) -> dict[str, Any]:
        return dict(self.hp)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        check_mutable("CleanPPO", hparams, self.hp, MUTABLE)  # unknown or fixed names -> ValueError
        self.hp.update(hparams)
        self._push_lr()

    def close(self) -> None:
        self.envs.close()

    # ------------------------------------------------------------------ PPO
    def _push_lr(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = float(self.hp["lr"])

    def _rollout_and_update(self, returns: list[float]) -> dict[str, float]:
        hp, (T, N) = self.hp, (int(self.hp["num_steps"]), self.envs.num_envs)
        obs, val, logp, rew, dones = (torch.zeros(T, N, self.obs.shape[1]), torch.zeros(T, N), torch.zeros(T, N),
                                      torch.zeros(T, N), torch.zeros(T, N))
        act = torch.zeros(T, N, dtype=torch.long)
        for t in range(T):
            obs[t] = self.obs
            with torch.no_grad():
                dist = Categorical(logits=self.actor(self.obs))
                act[t] = dist.sample()
                logp[t], val[t] = dist.log_prob(act[t]), self.critic(self.obs).squeeze(-1)
            o, raw, term, trunc, info = self.envs.step(act[t].numpy())
            self.ep_ret += raw
            for i in np.flatnonzero(term | trunc):
                returns.append(float(self.ep_ret[i]))
                self.ep_ret[i] = 0.0
            r = torch.as_tensor(raw, dtype=torch.float32)
            for i in np.flatnonzero(trunc & ~term):  # time limit: bootstrap from the true final observation
                with torch.no_grad():
                    final = torch.as_tensor(info["final_obs"][i], dtype=torch.float32).reshape(1, -1)
                    r[i] += hp["gamma"] * self.critic(final).item()
            rew[t], dones[t] = r, torch.as_tensor(term | trunc, dtype=torch.float32)
            self.obs = torch.as_tensor(o, dtype=torch.float32).reshape(N, -1)
        with torch.no_grad():  # GAE, CleanRL's recursion (dones[t]: the episode ended after step t)
            next_val, adv, last = self.critic(self.obs).squeeze(-1), torch.zeros(T, N), 0.0
            for t in reversed(range(T)):
                nonterminal = 1.0 - dones[t]
                nv = next_val if t == T - 1 else val[t + 1]
                delta = rew[t] + hp["gamma"] * nv * nonterminal - val[t]
                last = adv[t] = delta + hp["gamma"] * hp["gae_lambda"] * nonterminal * last
            ret = adv + val
        b_obs, b_act, b_logp, b_adv, b_ret = obs.reshape(T * N, -1), *(x.reshape(-1) for x in (act, logp, adv, ret))
        self._push_lr()  # the current hparams, read at every update
        k = int(hp["minibatches"])
        for _ in range(int(hp["epochs"])):
            for idx in torch.randperm(T * N)[: T * N // k * k].view(k, -1):  # k minibatches, CleanRL's way
                dist = Categorical(logits=self.actor(b_obs[idx]))
                ratio = (dist.log_prob(b_act[idx]) - b_logp[idx]).exp()
                a = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - hp["clip"], 1 + hp["clip"])).mean()
                v_loss = 0.5 * (self.critic(b_obs[idx]).squeeze(-1) - b_ret[idx]).pow(2).mean()
                entropy = dist.entropy().mean()
                loss = pg_loss - hp["ent_coef"] * entropy + hp["vf_coef"] * v_loss
                self.opt.zero_grad(); loss.backward()  # noqa: E702
                nn.utils.clip_grad_norm_(self.net.parameters(), hp["max_grad_norm"])
                self.opt.step()
        self.updates += 1
        return {"steps": T * N, "pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": entropy.item(),
                "lr": self.opt.param_groups[0]["lr"]}
