"""Actor processes: step gymnasium vector envs with a CPU copy of the policy.

An :class:`ActorPool` owns ``num_actors`` processes, each stepping a
``gymnasium.vector.SyncVectorEnv`` of ``envs_per_actor`` envs (autoreset in the
same step, so the true final observation of an episode is kept for
bootstrapping truncated episodes). ``collect(weights, T)`` sends the learner's
latest weights to every actor, each collects ``T`` steps per env, and the pool
returns one :class:`Rollout` of numpy arrays shaped ``[T, num_envs, ...]``.
``num_actors=0`` runs a single actor in the calling process (deterministic,
no IPC -- used by tests and tiny envs).

Failures surface: an exception inside an actor comes back as
:class:`ActorError` with the env id and the actor's traceback. Processes are
daemons, ignore SIGINT (the parent shuts them down), die with the parent
however it ends (kill -9 included, see :mod:`rlpop.agents.procs`), and are
terminated by :meth:`ActorPool.close`, which also runs at interpreter exit.
An actor that does not answer within the stall timeout (the experiment's
``worker_timeout_s``) is killed and the pool fails with :class:`ActorError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlpop.agents.envbank import true_next_obs
from rlpop.agents.networks import PolicySpec
from rlpop.agents.normalize import normalize_obs
from rlpop.agents.procs import ChildProcesses, activity
from rlpop import streams


class ActorError(RuntimeError):
    """An actor process failed; the message has the env id and the remote traceback."""


@dataclass
class Rollout:
    """Time-major arrays from ``T`` steps of ``N`` envs. Observations are raw
    (unnormalised); ``next_obs[t]`` is the observation after step t -- the true
    final observation where the episode ended at t."""

    obs: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return int(self.rewards.size)

    @staticmethod
    def concat(parts: list["Rollout"]) -> "Rollout":
        if len(parts) == 1:
            return parts[0]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=1)  # noqa: E731
        return Rollout(*(cat(n) for n in ("obs", "actions", "logprobs", "rewards", "terminated",
                                          "truncated", "next_obs")),
                       episode_returns=[r for p in parts for r in p.episode_returns],
                       episode_lengths=[n for p in parts for n in p.episode_lengths])


def _make_vector_env(env_id: str, env_kwargs: dict, num_envs: int) -> gym.vector.VectorEnv:
    from rlpop.envs import make_env  # registry first, in every process

    fns = [lambda: make_env(env_id, **env_kwargs) for _ in range(num_envs)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


class ActorCore:
    """One actor's envs + policy copy; used in-process or inside a process."""

    def __init__(self, env_id: str, env_kwargs: dict, policy_spec: PolicySpec, num_envs: int, seed: int,
                 actor: int = 0):
        self.env_id = env_id
        self.envs = _make_vector_env(env_id, env_kwargs, num_envs)
        self.policy = policy_spec.build()
        self.policy.eval()
        # the member's streams (rlpop.streams): this actor's noise, and envs actor*n.. of the member's env seeds
        self.generator = streams.actor_generator(seed, actor)
        self.seed = int(seed)
        self.actor = int(actor)
        self.box_actions = isinstance(self.envs.single_action_space, gym.spaces.Box)
        if self.box_actions:
            self.low = self.envs.single_action_space.low
            self.high = self.envs.single_action_space.high
        self._reset_count = 0
        self.reset()

    @property
    def single_observation_space(self) -> gym.Space:
        return self.envs.single_observation_space

    @property
    def single_action_space(self) -> gym.Space:
        return self.envs.single_action_space

    def reset(self) -> None:
        """Start fresh episodes (after the learner's state was replaced)."""
        with activity.env_step():  # a stalled env is seen by the inline backend's watchdog
            n = self.envs.num_envs
            seeds = streams.env_seeds(self.seed, self._reset_count, (self.actor + 1) * n)[self.actor * n:]
            self.obs, _ = self.envs.reset(seed=seeds)
        self._reset_count += 1
        n = self.envs.num_envs
        self.ep_ret = np.zeros(n)
        self.ep_len = np.zeros(n, np.int64)

    def collect(self, weights: dict[str, torch.Tensor], obs_norm: tuple[np.ndarray, np.ndarray] | None,
                steps: int) -> Rollout:
        self.policy.load_state_dict(weights)
        n = self.envs.num_envs
        obs_buf = np.empty((steps, n, *self.obs.shape[1:]), np.float32)
        next_buf = np.empty_like(obs_buf)
        rew = np.empty((steps, n), np.float32)
        term = np.empty((steps, n), bool)
        trunc = np.empty((steps, n), bool)
        logp_buf = np.empty((steps, n), np.float32)
        act_buf = None
        returns, lengths = [], []
        for t in range(steps):
            obs_buf[t] = self.obs
            x = self.obs if obs_norm is None else normalize_obs(self.obs, *obs_norm)
            action, logp = self.policy.act(torch.as_tensor(x, dtype=torch.float32), self.generator)
            action = action.numpy()
            if act_buf is None:
                act_buf = np.empty((steps, *action.shape), action.dtype)
            act_buf[t] = action
            logp_buf[t] = logp.numpy()
            env_action = np.clip(action, self.low, self.high) if self.box_actions else action
            with activity.env_step():  # a stalled env is seen by the inline backend's watchdog
                obs, r, te, tr, info = self.envs.step(env_action)
            rew[t], term[t], trunc[t] = r, te, tr
            done = te | tr
            next_buf[t] = true_next_obs(obs, done, info)
            self.ep_ret += r
            self.ep_len += 1
            for i in np.flatnonzero(done):
                returns.append(float(self.ep_ret[i]))
                lengths.append(int(self.ep_len[i]))
                self.ep_ret[i], self.ep_len[i] = 0.0, 0
            self.obs = obs
        return Rollout(obs_buf, act_buf, logp_buf, rew, term, trunc, next_buf, returns, lengths)

    def close(self) -> None:
        self.envs.close()


def _actor_core(env_id, env_kwargs, policy_spec, num_envs, seed, actor) -> "ActorCore":
    """What an actor process serves (one torch thread: the cores are the envs')."""
    torch.set_num_threads(1)
    return ActorCore(env_id, env_kwargs, policy_spec, num_envs, seed, actor)


class ActorPool:
    """``num_actors`` processes x ``envs_per_actor`` envs (or in-process when 0)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], policy_spec: PolicySpec,
                 num_actors: int = 0, envs_per_actor: int = 1, seed: int = 0):
        if num_actors < 0 or envs_per_actor < 1:
            raise ValueError(f"num_actors must be >= 0 and envs_per_actor >= 1 "
                             f"(got {num_actors}, {envs_per_actor})")
        self.env_id = env_id
        self.num_actors = num_actors
        self.num_envs = max(1, num_actors) * envs_per_actor
        self._local: ActorCore | None = None
        self._children: ChildProcesses | None = None
        self._closed_here = False
        if num_actors == 0:
            self._local = ActorCore(env_id, env_kwargs, policy_spec, envs_per_actor, seed)
            self.observation_space = self._local.envs.single_observation_space
            self.action_space = self._local.envs.single_action_space
            return
        self._children = ChildProcesses(
            _actor_core, [(env_id, env_kwargs, policy_spec, envs_per_actor, seed, i)
                          for i in range(num_actors)],
            [f"rlpop-actor-{env_id}-{i}" for i in range(num_actors)], ActorError, "actor", env_id)
        spaces_ = [self._children.receive(i) for i in range(num_actors)]
        self.observation_space, self.action_space = spaces_[0]

    @property
    def _procs(self) -> list[Any]:
        return [] if self._children is None else self._children.procs

    @property
    def _closed(self) -> bool:
        """Closed by :meth:`close`, or because an actor failed (the pool then shut every actor down)."""
        return self._closed_here or (self._children is not None and self._children.closed)

    def collect(self, weights: dict[str, torch.Tensor], obs_norm: tuple[np.ndarray, np.ndarray] | None,
                steps_per_env: int) -> Rollout:
        if self._local is not None:
            try:
                return self._local.collect(weights, obs_norm, steps_per_env)
            except Exception as exc:
                raise ActorError(f"in-process actor for env {self.env_id!r} failed: {exc!r}") from exc
        if self._closed:
            raise ActorError(f"actor pool for env {self.env_id!r} is closed")
        return Rollout.concat(self._children.call([("collect", (weights, obs_norm, steps_per_env))]
                                                  * len(self._children)))

    def reset(self) -> None:
        if self._local is not None:
            self._local.reset()
            return
        if self._closed:
            raise ActorError(f"actor pool for env {self.env_id!r} is closed")
        self._children.call([("reset", ())] * len(self._children))

    def close(self) -> None:
        if self._closed_here:
            return
        self._closed_here = True
        if self._local is not None:
            self._local.close()
        if self._children is not None:
            self._children.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
