"""What every learner fed by an :class:`~rlpop.agents.actors.ActorPool` shares (PPO, V-MPO).

The set-up (hyperparameters, seeds, device, env spaces, the actor policy
recipe, normalisers) and the plumbing to the actors (start the pool lazily,
observation statistics, a fresh start after a state copy, shutdown) live here
once; each learner keeps its own loss and update.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rlpop.agents.actors import ActorPool, Rollout
from rlpop.agents.base import NonFiniteError, TrainResult, nonfinite_inputs, nonfinite_training, resolve_hparams
from rlpop.agents.networks import PolicySpec
from rlpop.agents.normalize import RewardScaler, RunningMeanStd, normalize_obs
from rlpop import streams


def pick_device(name: str) -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_cpu(obj: Any) -> Any:
    """Tensors (nested in dicts and lists, e.g. an optimiser's state) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj


def pool_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """Value rules of the hyperparameters PPO and V-MPO share (rollouts, actors, networks, device)."""
    from rlpop.agents import hparam_rules as R

    return {
        "lr": R.learning_rate(), "gamma": R.unit(0.99, lo_open=True), "max_grad_norm": R.grad_norm(0.5),
        "epochs": R.integer(1, example=10),
        "minibatch_size": R.integer(1, hi=int(hp.get("rollout_steps") or 1) if _is_int(hp.get("rollout_steps")) else None,
                                    example=64),
        "rollout_steps": R.integer(1, example=2048), "num_actors": R.integer(0, example=2),
        "envs_per_actor": R.integer(1, example=4), "hidden": R.Rule("layers"), "init_log_std": R.Rule("real"),
        "norm_obs": R.flag(), "norm_reward": R.flag(), "device": R.device_rule(), "torch_threads": R.integer(0),
        "env_backend": R.one_of("auto", "envpool", "gym"),
    }


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def check_layout(hp: dict[str, Any]) -> None:
    """rollout_steps must split evenly over the envs (num_actors x envs_per_actor)."""
    n_envs = max(1, int(hp["num_actors"])) * int(hp["envs_per_actor"])
    if int(hp["rollout_steps"]) % n_envs:
        raise ValueError(f"agent.hparams.rollout_steps={hp['rollout_steps']} must be a multiple of the number of envs "
                         f"(num_actors x envs_per_actor = {n_envs}); e.g. rollout_steps="
                         f"{max(1, round(int(hp['rollout_steps']) / n_envs)) * n_envs}")


class PoolLearner:
    """Base of learners whose rollouts come from actor processes.

    The contract with a subclass: it builds ``self.net`` (an ``ActorCritic``) and ``self.opt`` after
    :meth:`_setup`, and implements :meth:`actor_weights` and :meth:`learn`. Everything else -- the set-up, the
    collect/learn loop, the rollout's normalised tensors (:meth:`_prepare`), the part of the state every such
    learner has (:meth:`_base_state` / :meth:`_load_base_state`) -- is here once.

    The learner's randomness is its own: the minibatch order comes from ``self.rng`` (saved in its state),
    the actions from its actors' generators; the weights are initialised under a forked torch RNG, so building
    or copying one member never moves the process-wide torch RNG that other members in the process share.
    """

    pool: ActorPool | None
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    updates: int = 0
    env_steps: int = 0

    def _setup(self, name: str, defaults: dict[str, Any], hparams: dict[str, Any] | None, env_id: str,
               seed: int, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """Common construction; returns the keyword arguments of the ActorCritic network."""
        self.hp = resolve_hparams(name, defaults, hparams)
        self.hp["hidden"] = tuple(self.hp["hidden"])
        self.env_id = env_id
        self.seed = int(seed)
        if self.hp["torch_threads"]:
            torch.set_num_threads(int(self.hp["torch_threads"]))
        self.updates, self.env_steps = 0, 0
        self.device = pick_device(self.hp["device"])
        self.rng = streams.minibatch_rng(self.seed)
        self.pool = None
        self._env_kwargs = dict(env_kwargs or {})
        from rlpop.envs import make_env

        probe = make_env(env_id, **self._env_kwargs)  # spaces, so the network exists before actors start
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        net_kwargs = dict(observation_space=self.observation_space, action_space=self.action_space,
                          hidden=self.hp["hidden"], init_log_std=self.hp["init_log_std"])
        self.policy_spec = PolicySpec("rlpop.agents.networks:ActorCritic", net_kwargs)
        self.obs_rms = RunningMeanStd(self.observation_space.shape)
        check_layout(self.hp)
        n_envs = max(1, self.hp["num_actors"]) * self.hp["envs_per_actor"]
        self.reward_scaler = RewardScaler(n_envs, self.hp["gamma"])
        return net_kwargs

    def _seeded(self, build):
        """``build()`` under the learner's seed, without moving the process-wide torch RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(streams.init_seed(self.seed))
            return build()

    def _prepare(self, ro: Rollout) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """A rollout as the update needs it: observations and next observations normalised with the statistics
        the actors used (then the statistics take this rollout in), flattened to ``[T * N, obs]``, and the
        rewards (scaled when ``norm_reward``) as ``[T, N]``."""
        stats = self._obs_norm()
        T, N = ro.rewards.shape
        norm = (lambda o: o.astype(np.float32)) if stats is None else (lambda o: normalize_obs(o, *stats))
        obs = torch.as_tensor(norm(ro.obs), device=self.device).reshape(T * N, -1)
        next_obs = torch.as_tensor(norm(ro.next_obs), device=self.device).reshape(T * N, -1)
        if self.hp["norm_obs"]:
            self.obs_rms.update(ro.obs.reshape(T * N, -1))
        rewards = (self.reward_scaler.scale(ro.rewards, ro.terminated | ro.truncated)
                   if self.hp["norm_reward"] else ro.rewards.astype(np.float32))
        return obs, next_obs, rewards

    def _base_state(self) -> dict[str, Any]:
        """The state every pool learner has: weights, optimiser, normalisers, hparams, its rng, its counters."""
        return {
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "opt": to_cpu(copy.deepcopy(self.opt.state_dict())),
            "obs_rms": self.obs_rms.state(),
            "reward_scaler": self.reward_scaler.state(),
            "hparams": dict(self.hp),
            streams.KEY: {"minibatch": streams.rng_state(self.rng)},
            "updates": self.updates,
            "env_steps": self.env_steps,
        }

    def _load_base_state(self, state: dict[str, Any], mutable: frozenset[str]) -> None:
        """Load :meth:`_base_state`'s part (the ``mutable`` hparams of the source come along)."""
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.obs_rms.load(state["obs_rms"])
        self.reward_scaler.load(state["reward_scaler"])
        self.hp.update({k: v for k, v in state["hparams"].items() if k in mutable})
        self.reward_scaler.gamma = self.hp["gamma"]
        if streams.KEY in state:  # a checkpoint of this member (a copy from another member has none)
            streams.set_rng_state(self.rng, state[streams.KEY]["minibatch"])
        self.updates, self.env_steps = state["updates"], state["env_steps"]

    def actor_weights(self) -> dict[str, torch.Tensor]:
        """CPU weights the actors act with (the learner's policy, or its target network)."""
        raise NotImplementedError

    def learn(self, rollout: Rollout) -> dict[str, float]:
        """One learner update on a rollout; returns its diagnostics."""
        raise NotImplementedError

    def train(self, steps: int) -> TrainResult:
        """Collect and learn, whole rollouts at a time, until at least ``steps`` env steps were consumed."""
        pool = self._ensure_pool()
        done_steps, returns, metrics, updates = 0, [], {}, []
        while done_steps < steps:
            rollout = pool.collect(self.actor_weights(), self._obs_norm(),
                                   self.hp["rollout_steps"] // pool.num_envs)
            why = nonfinite_inputs(self.env_id, rollout.obs, rollout.rewards) or \
                nonfinite_inputs(self.env_id, rollout.next_obs, None)
            if why:
                raise NonFiniteError(why)
            metrics = self.learn(rollout)
            why = nonfinite_training(metrics, torch.nn.utils.parameters_to_vector(self.net.parameters()).detach())
            if why:
                raise NonFiniteError(why)
            updates.append({**metrics, "steps": rollout.steps, "update": self.updates})
            done_steps += rollout.steps
            returns += rollout.episode_returns
        self.env_steps += done_steps
        return TrainResult(done_steps, returns, metrics, updates)

    def _ensure_pool(self) -> ActorPool:
        if self.pool is None:
            self.pool = ActorPool(self.env_id, self._env_kwargs, self.policy_spec, self.hp["num_actors"],
                                  self.hp["envs_per_actor"], seed=self.seed)
        return self.pool

    def _obs_norm(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The observation statistics the actors normalise with (None when off)."""
        return (self.obs_rms.mean.copy(), self.obs_rms.var.copy()) if self.hp["norm_obs"] else None

    def _apply_lr(self) -> None:
        for g in self.opt.param_groups:
            g["lr"] = float(self.hp["lr"])

    def _restart_episodes(self) -> None:
        """After a state copy: actors start fresh episodes (no stale ones from the old weights), and the reward
        scaler's running returns start again with them."""
        self.reward_scaler.returns[:] = 0.0
        if self.pool is not None:
            self.pool.reset()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
