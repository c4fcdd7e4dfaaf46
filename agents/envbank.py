"""The envs of K population members, stepped together for a batched learner.

Every member owns ``N`` envs: its own seeds, its own episodes. A bank steps any subset of members -- members
that do not train this round cost no env steps, and their envs and running episodes stay exactly as they were
-- and hands back arrays shaped ``[K', N, ...]`` for one batched policy forward. Nothing one member does
(stepping, pausing, resetting, failing) touches another member's envs.

* :class:`GymBank`: a ``gymnasium.vector.SyncVectorEnv`` per member in the learner's process, autoreset in
  the SAME step (``next_obs`` holds the true final observation of an episode, every step is a real
  transition). Works for every env, custom ones included (they come from :func:`rlpop.envs.make_env`).
* :class:`ProcBank`: the same per-member vector envs spread over ``num_actors`` spawned actor processes (actor
  ``a`` holds envs ``a*per .. (a+1)*per`` of every member), so Python envs -- custom ones included -- step on
  every core while the policy stays batched in the learner's process.
* :class:`EnvPoolBank`: one EnvPool (C++ threads: about one per core over the bank's pools) per member, for the
  MuJoCo envs EnvPool provides; a step sends every stepped member's actions first, then receives, so the
  pools' threads run together. EnvPool resets an env on the step AFTER its episode ended: the step that
  ended it returns the true final observation (so truncated episodes bootstrap correctly), and the following
  step is a reset that is not a transition -- the bank marks it ``valid=False`` (reward 0, no end) and the
  learner leaves it out of its losses and statistics (it still counts as an env step of the budget: one per
  episode). One pool over all members' envs steps faster when every member steps (fewer calls and thread
  wake-ups: ``benchmarks/envpool_bank.py``) but cannot give a member its own seeds (a pool seeds its env
  ``i`` with ``seed + i``).

Seeds (:mod:`rlpop.streams`): member ``m``'s reset number ``r`` seeds its ``N`` envs with
``env_seeds(seed_m, r, N)`` (env ``j`` gets the ``j``-th word, whatever ``num_actors`` is); EnvPool builds the
member's pool afresh at each reset with the one seed ``envpool_seed(seed_m, r, N)`` (its env ``j`` gets
``seed + j``). ``seed_m`` is the member's current stream seed (:meth:`reseed` after a copy); ``state(m)`` and
``load_state(m, ...)`` carry the seed and the reset count through a checkpoint, so a resumed member's envs
restart from seeds it has not used.

:func:`make_bank` picks EnvPool where it is installed and provides the env id (``env_backend="auto"``),
gymnasium otherwise (in actor processes when ``num_actors > 0``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from rlpop import streams
from rlpop.agents.procs import ChildProcesses, activity

#: gymnasium id -> EnvPool task id, for envs whose dynamics match gymnasium's (checked by
#: tests/test_envbank.py::test_envpool_matches_gymnasium where EnvPool is installed)
ENVPOOL_IDS: dict[str, str] = {
    # same observations and rewards as gymnasium for the same actions from the same start (reset noise 0):
    # max |obs diff| ~1e-7 or less (Humanoid-v5: 1.4e-2 in its contact-force terms, reward 4e-5)
    "Hopper-v5": "Hopper-v5",
    "HalfCheetah-v5": "HalfCheetah-v5",
    "Walker2d-v5": "Walker2d-v5",
    "Humanoid-v5": "Humanoid-v5",
    "InvertedPendulum-v5": "InvertedPendulum-v5",
    # not listed: Ant-v5 (observations differ by up to 7 after 300 steps in EnvPool 1.2.5)
}


@dataclass
class Step:
    """One step of the members ``[K', N]``: ``obs`` is what the policy sees next (after any
    reset), ``next_obs`` the observation the step led to (the true final one where an episode
    ended), ``valid`` False where the slot was a reset rather than a transition (None: all valid)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    valid: np.ndarray | None = None


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The observation each env's step led to, from a same-step-autoreset vector env: ``obs``, with the
    true final observation (``info["final_obs"]``) where an episode ended (kept for bootstrapping)."""
    if not done.any():
        return obs
    nxt = obs.copy()
    final = info["final_obs"]
    for j in np.flatnonzero(done):
        nxt[j] = final[j]
    return nxt


def envpool_available(env_id: str) -> bool:
    if env_id not in ENVPOOL_IDS:
        return False
    try:
        import envpool  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or fails to load on this platform
        return False
    return ENVPOOL_IDS[env_id] in envpool.list_all_envs()


def uses_envpool(env_id: str, env_kwargs: dict[str, Any], backend: str = "auto") -> bool:
    """Whether :func:`make_bank` steps ``env_id`` on EnvPool for this ``env_backend``."""
    if backend not in ("auto", "envpool", "gym"):
        raise ValueError(f"env_backend={backend!r}: use 'auto', 'envpool' or 'gym'")
    return backend == "envpool" or (backend == "auto" and not env_kwargs and envpool_available(env_id))


def make_bank(env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int], num_envs: int,
              backend: str = "auto", num_threads: int | None = None, num_actors: int = 0
              ) -> "GymBank | ProcBank | EnvPoolBank":
    """A bank for ``len(seeds)`` members of ``num_envs`` envs each.

    ``backend``: ``"auto"`` (EnvPool where it provides the env and no ``env_kwargs`` are given, else
    gymnasium), ``"envpool"`` (an error if it cannot) or ``"gym"``. Gymnasium envs step in
    ``num_actors`` actor processes (``num_envs / num_actors`` envs of every member each), or in
    this process when ``num_actors`` is 0.
    """
    if uses_envpool(env_id, env_kwargs, backend):
        if not envpool_available(env_id):
            raise ValueError(f"env_backend='envpool': EnvPool is not installed or does not provide {env_id!r} "
                             f"(it provides {sorted(ENVPOOL_IDS)}); use env_backend='auto' or 'gym'")
        if env_kwargs:
            raise ValueError(f"env_backend='envpool' takes no env_kwargs (got {sorted(env_kwargs)}); "
                             "use env_backend='gym'")
        return EnvPoolBank(env_id, seeds, num_envs, num_threads)
    if num_actors > 0:
        return ProcBank(env_id, env_kwargs, seeds, num_envs, num_actors)
    return GymBank(env_id, env_kwargs, seeds, num_envs)


class _SyncSend:
    """``send``/``recv`` for a bank that steps synchronously: ``send`` keeps the actions, ``recv`` steps. (The
    learner overlaps its policy forward with env stepping only on a bank whose ``overlaps`` is True.)"""

    #: whether a step sent with :meth:`send` runs while this process does other work
    overlaps = False

    def send(self, members: Sequence[int], actions: np.ndarray) -> None:
        self._sent = (list(members), actions)

    def recv(self, members: Sequence[int]) -> Step:
        sent, actions = self._sent
        if sent != list(members):
            raise RuntimeError(f"recv({list(members)}) after send({sent})")
        self._sent = None
        return self.step(sent, actions)


class _Streams(_SyncSend):
    """Each member's env-stream position: its current stream seed and how many resets it has made."""

    def _init_streams(self, seeds: Sequence[int]) -> None:
        self.seeds = [int(s) for s in seeds]
        self._resets = [0] * len(self.seeds)

    def state(self, m: int) -> dict[str, int]:
        return {"seed": self.seeds[m], "resets": self._resets[m]}

    def _load_stream(self, m: int, state: dict[str, int]) -> None:
        self.seeds[m], self._resets[m] = int(state["seed"]), int(state["resets"])

    def reset(self, members: Sequence[int]) -> bool:
        raise NotImplementedError

    def reseed(self, m: int, seed: int) -> None:
        """Member ``m``'s envs follow the env stream of ``seed`` from its first reset on (fresh episodes)."""
        self._load_stream(m, {"seed": seed, "resets": 0})
        self.reset([m])


class GymBank(_Streams):
    """A SyncVectorEnv per member (same-step autoreset), in this process; its envs are envs ``offset ..`` of
    each member's env seeds (:class:`ProcBank` gives each actor process its own slice)."""

    kind = "gym"

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int], num_envs: int,
                 offset: int = 0):
        from rlpop.envs import make_env  # the one registry, in every process

        self.num_envs = num_envs
        self.offset = int(offset)
        self._init_streams(seeds)
        self.envs = [gym.vector.SyncVectorEnv([lambda: make_env(env_id, **env_kwargs) for _ in range(num_envs)],
                                              autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
                     for _ in self.seeds]
        self.single_observation_space = self.envs[0].single_observation_space
        self.single_action_space = self.envs[0].single_action_space
        self._obs: list[np.ndarray | None] = [None] * len(self.seeds)

    def reset(self, members: Sequence[int]) -> bool:
        """Fresh episodes for ``members``, from the next seeds of their env streams."""
        for m in members:
            seeds = streams.env_seeds(self.seeds[m], self._resets[m], self.offset + self.num_envs)[self.offset:]
            with activity.env_step():  # a stalled env is seen by the inline backend's watchdog
                self._obs[m], _ = self.envs[m].reset(seed=seeds)
            self._resets[m] += 1
        return True

    def load_state(self, m: int, state: dict[str, int]) -> None:
        """Member ``m``'s env stream where a checkpoint left it: its next reset uses seeds it has not used."""
        self._load_stream(m, state)
        self._obs[m] = None

    def observe(self, members: Sequence[int]) -> np.ndarray:
        for m in members:
            if self._obs[m] is None:
                self.reset([m])
        return np.stack([self._obs[m] for m in members])

    def step(self, members: Sequence[int], actions: np.ndarray) -> Step:
        obs, rew, term, trunc, nxt = [], [], [], [], []
        for i, m in enumerate(members):
            with activity.env_step():  # a stalled env is seen by the inline backend's watchdog
                o, r, te, tr, info = self.envs[m].step(actions[i])
            n = true_next_obs(o, te | tr, info)
            self._obs[m] = o
            obs.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
            nxt.append(n)
        return Step(np.stack(obs), np.stack(rew), np.stack(term), np.stack(trunc), np.stack(nxt))

    def close(self) -> None:
        for e in self.envs:
            e.close()
        self.envs = []


class BankError(RuntimeError):
    """An env process of a bank failed; the message has the env id and the remote traceback."""


class ProcBank(_SyncSend):
    """``num_actors`` spawned processes, each stepping ``num_envs / num_actors`` envs of every member."""

    kind = "procs"

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int], num_envs: int,
                 num_actors: int):
        if num_envs % num_actors:
            raise ValueError(f"num_envs={num_envs} must be a multiple of num_actors={num_actors}")
        self.env_id = env_id
        self.num_envs = num_envs
        self.per = num_envs // num_actors
        self._children = ChildProcesses(
            GymBank, [(env_id, env_kwargs, [int(s) for s in seeds], self.per, a * self.per)
                      for a in range(num_actors)],
            [f"rlpop-envs-{env_id}-{a}" for a in range(num_actors)], BankError, "env process", env_id)
        spaces_ = [self._children.receive(a) for a in range(num_actors)]
        self.single_observation_space, self.single_action_space = spaces_[0]

    @property
    def _procs(self) -> list[Any]:
        return self._children.procs

    @property
    def closed(self) -> bool:
        return self._children.closed

    def _call(self, cmd: str, args_per_actor: list[tuple]) -> list[Any]:
        return self._children.call([(cmd, a) for a in args_per_actor])

    def _all(self, cmd: str, *args: Any) -> list[Any]:
        return self._call(cmd, [args] * len(self._children))

    def reset(self, members: Sequence[int]) -> bool:
        self._all("reset", list(members))
        return True

    def reseed(self, m: int, seed: int) -> None:
        self._all("reseed", m, seed)

    def state(self, m: int) -> dict[str, int]:
        return self._all("state", m)[0]  # every actor holds the same stream position

    def load_state(self, m: int, state: dict[str, int]) -> None:
        self._all("load_state", m, state)

    def observe(self, members: Sequence[int]) -> np.ndarray:
        return np.concatenate(self._all("observe", list(members)), axis=1)

    def step(self, members: Sequence[int], actions: np.ndarray) -> Step:
        m = list(members)
        parts = self._call("step", [(m, actions[:, a * self.per:(a + 1) * self.per])
                                    for a in range(len(self._children))])
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=1)  # noqa: E731
        return Step(cat("obs"), cat("reward"), cat("terminated"), cat("truncated"), cat("next_obs"))

    def close(self) -> None:
        self._children.close()


class _PoolIO:
    """``send``/``recv`` of one EnvPool of ``n`` envs, without the Python wrapper's per-call work where the pool
    has the plain layout of EnvPool's single-player envs (its ``send`` rebuilds the config dict and infers
    player ids, its ``recv`` builds the info tree: about a third of a 1-env pool's step). Any other layout
    takes the public ``send``/``recv`` (tests/test_envbank.py checks that both give the same steps)."""

    def __init__(self, pool: Any, n: int):
        self.pool = pool
        self.ids = np.arange(n, dtype=np.int32)
        self.dtype = pool.action_space.dtype
        akeys, skeys = list(getattr(pool, "_action_keys", ())), list(getattr(pool, "_state_keys", ()))
        self.fast = (sorted(akeys) == ["action", "env_id", "players.env_id"]
                     and {"obs", "reward", "done", "trunc", "info:env_id"} <= set(skeys)
                     and pool.config.get("max_num_players", 1) == 1
                     and hasattr(pool, "_send") and hasattr(pool, "_recv"))
        if self.fast:
            args = {"env_id": self.ids, "players.env_id": self.ids}
            self._order = [args.get(k) for k in akeys]
            self._action_at = akeys.index("action")
            self._at = [skeys.index(k) for k in ("obs", "reward", "done", "trunc", "info:env_id")]

    def send(self, action: np.ndarray) -> None:
        action = np.ascontiguousarray(action, dtype=self.dtype)
        if not self.fast:
            self.pool.send(action, self.ids)
            return
        args = list(self._order)
        args[self._action_at] = action
        self.pool._send(args)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Observations, rewards, terminated, truncated and env ids, as the public ``recv`` returns them."""
        if not self.fast:
            o, r, te, tr, info = self.pool.recv()
            return np.asarray(o), np.asarray(r), np.asarray(te), np.asarray(tr), np.asarray(info["env_id"])
        state = self.pool._recv()
        o, r, done, tr, ids = (state[i] for i in self._at)
        return o, r, done & ~tr, tr, ids


class EnvPoolBank(_Streams):
    """One EnvPool of ``N`` envs per member (built at the member's first observe, and afresh at each reset).

    A step of some members sends each one's actions to its pool, then receives each pool's results: the other
    members' pools are not touched, so their running episodes go on when they are next stepped.

    Threads: ``num_threads`` C++ threads per pool (at most ``N``); by default ``min(N, ceil(cores / K))``, so
    the ``K`` pools of a bank stepped together have about one thread per usable core (at least one each):
    the pools already step in parallel, and every further thread is one more wake-up a step
    (``benchmarks/envpool_bank.py`` measures the choices).
    """

    kind = "envpool"

    def __init__(self, env_id: str, seeds: Sequence[int], num_envs: int, num_threads: int | None = None):
        import os

        import envpool

        self.env_id = env_id
        self.num_envs = num_envs
        self._envpool = envpool
        self._init_streams(seeds)
        cores = len(os.sched_getaffinity(0))
        self.threads = min(num_envs, int(num_threads) if num_threads else max(1, -(-cores // len(self.seeds))))
        probe = self._make(1, 0)
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        k = len(self.seeds)
        self._pools: list[_PoolIO | None] = [None] * k
        self._obs: list[np.ndarray | None] = [None] * k
        #: where each member's env ended an episode on its last step: its next step is EnvPool's reset slot
        self._done = np.zeros((k, num_envs), bool)
        self._ids = np.arange(num_envs, dtype=np.int32)

    def _make(self, n: int, seed: int):
        return self._envpool.make(ENVPOOL_IDS[self.env_id], env_type="gymnasium", num_envs=n, seed=seed,
                                  num_threads=min(self.threads, n), batch_size=n)

    def _close_pool(self, m: int) -> None:
        if self._pools[m] is not None:
            self._pools[m].pool.close()
        self._pools[m], self._obs[m] = None, None

    def reset(self, members: Sequence[int]) -> bool:
        """Fresh episodes for ``members``: a pool per member seeded from the next seed of its env stream."""
        for m in members:
            self._close_pool(m)
            pool = self._make(self.num_envs, streams.envpool_seed(self.seeds[m], self._resets[m], self.num_envs))
            self._resets[m] += 1
            self._pools[m] = _PoolIO(pool, self.num_envs)
            obs, _ = pool.reset()
            self._obs[m] = np.asarray(obs)
            self._done[m] = False
        return True

    def load_state(self, m: int, state: dict[str, int]) -> None:
        """Member ``m``'s env stream where a checkpoint left it: its next reset uses seeds it has not used."""
        self._load_stream(m, state)
        self._close_pool(m)

    def observe(self, members: Sequence[int]) -> np.ndarray:
        for m in members:
            if self._obs[m] is None:
                self.reset([m])
        return np.stack([self._obs[m] for m in members])

    #: a pool steps in its C++ threads between :meth:`send` and :meth:`recv`
    overlaps = True

    def step(self, members: Sequence[int], actions: np.ndarray) -> Step:
        self.send(members, actions)  # every pool's threads start before any result is awaited
        return self.recv(members)

    def send(self, members: Sequence[int], actions: np.ndarray) -> None:
        """Start a step of ``members``' pools; :meth:`recv` with the same members collects it."""
        for i, m in enumerate(members):
            self._pools[m].send(actions[i])

    def recv(self, members: Sequence[int]) -> Step:
        members = list(members)
        n = self.num_envs
        obs = np.empty((len(members), n, *self.single_observation_space.shape),
                       self.single_observation_space.dtype)
        rew = np.empty((len(members), n), np.float32)
        term = np.empty((len(members), n), bool)
        trunc = np.empty((len(members), n), bool)
        for i, m in enumerate(members):
            o, r, te, tr, order = self._pools[m].recv()
            if n > 1 and not np.array_equal(order, self._ids):  # a batch lists its envs in the order they finished
                inv = np.argsort(order)
                o, r, te, tr = o[inv], r[inv], te[inv], tr[inv]
            obs[i], rew[i], term[i], trunc[i] = o, r, te, tr
        # the step after an episode's end is EnvPool's reset: not a transition (no reward, no end)
        was_reset = self._done[members]
        term &= ~was_reset
        trunc &= ~was_reset
        rew[was_reset] = 0.0
        self._done[members] = term | trunc
        for i, m in enumerate(members):
            self._obs[m] = obs[i]
        return Step(obs, rew, term, trunc, obs, ~was_reset if was_reset.any() else None)

    def close(self) -> None:
        for m in range(len(self._pools)):
            self._close_pool(m)
