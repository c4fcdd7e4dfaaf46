"""Shards: the unit of compute a backend places -- one process hosting K members.

* :class:`BatchShard` hosts K >= 1 members of a *batched* learner (PPO, V-MPO:
  their only engine): their weights, optimiser state and normalisers are
  stacked, one policy forward acts for all their envs and one update trains
  them together. A copy between two members of the shard is a slice copy.
* :class:`MemberShard` hosts one member of a learner without a batched form
  (the toy, an adapter, a user's learner) through a
  :class:`~rlpop.worker.Worker`: the per-member engine.

Both speak the same per-worker-id protocol, so backends only place and call
shards, and nothing above the backend knows which engine runs.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

from rlpop.streams import without_streams
from rlpop.worker import QTracker, TrainReport, Worker, WorkerFailure, WorkerSpec


def batched_learner(learner: str) -> type | None:
    """The batched implementation of a learner, or None when it has none."""
    from rlpop.agents import batched_learner_class

    return batched_learner_class(learner)


def split(specs: Sequence[WorkerSpec], n_shards: int) -> list[list[WorkerSpec]]:
    """``specs`` in ``n_shards`` contiguous groups of near-equal size (ids in order)."""
    n_shards = max(1, min(n_shards, len(specs)))
    size, extra = divmod(len(specs), n_shards)
    out, i = [], 0
    for s in range(n_shards):
        n = size + (1 if s < extra else 0)
        out.append(list(specs[i:i + n]))
        i += n
    return out


class BatchShard:
    """K members of a batched learner in this process."""

    def __init__(self, specs: Sequence[WorkerSpec], cpus: float | None = None):
        specs = list(specs)
        cls = batched_learner(specs[0].learner)
        if cls is None:
            raise ValueError(f"learner {specs[0].learner!r} has no batched implementation")
        self.specs = {s.id: s for s in specs}
        self.ids = [s.id for s in specs]
        self.slot = {s.id: k for k, s in enumerate(specs)}
        threads = max(1, int(cpus)) if cpus else len(os.sched_getaffinity(0))
        self.learner = cls(specs[0].env_id, [dict(s.hparams) for s in specs], [s.seed for s in specs],
                           env_kwargs=dict(specs[0].env_kwargs), update_threads=threads)
        self.steps = {i: 0 for i in self.ids}
        self.q = {i: QTracker(s.q_window_episodes) for i, s in self.specs.items()}
        self._initial = {i: self.learner.get_state(self.slot[i]) for i in self.ids}  # to rebuild a member
        self.live: dict[str, Any] = {"steps": 0, "target": 0, "t0": time.time()}

    def progress(self) -> dict[str, Any]:
        """Env steps taken so far in the current (or last) ``train`` call, all members together."""
        return dict(self.live)

    def ping(self) -> list[int]:
        return list(self.ids)

    def train(self, ids: Sequence[int], steps: int,
              on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[int, TrainReport]:
        ids = [i for i in self.ids if i in set(ids)]
        t0 = time.perf_counter()
        self.live = {"steps": 0, "target": int(steps) * len(ids), "t0": time.time()}

        def on_update(per_member: int) -> None:
            self.live["steps"] = per_member * len(ids)
            if on_progress is not None:
                on_progress(dict(self.live))

        results = self.learner.train([self.slot[i] for i in ids], int(steps), on_update)
        dt = time.perf_counter() - t0
        out = {}
        for i in ids:
            res = results[self.slot[i]]
            if res.failed:  # its env gave NaN/inf, or it diverged: the controller replaces it
                out[i] = WorkerFailure.learner(i, res.failed)
                continue
            self.steps[i] += int(res.steps)
            q = self.q[i].record(res.episode_returns)
            out[i] = TrainReport(i, self.steps[i], q, len(res.episode_returns), dt, dict(res.metrics),
                                 list(res.updates))
        return out

    def get_learner_state(self, i: int) -> dict[str, Any]:
        return self.learner.get_state(self.slot[i])

    def set_learner_state(self, i: int, state: dict[str, Any]) -> None:
        """``i`` takes another member's learner state (a copy: not the source's streams; ``i`` starts its next
        stream epoch, :mod:`rlpop.streams`)."""
        self.learner.set_state(self.slot[i], without_streams(state))
        self.q[i].clear()

    def restream(self, i: int, seed: int, epoch: int) -> None:
        """``i`` goes on with the streams of member seed ``seed`` at ``epoch``, fresh episodes, Q window cleared."""
        self.learner.restream(self.slot[i], seed, epoch)
        self.q[i].clear()

    def copy(self, src: int, dst: int) -> None:
        """Within the shard: a slice copy of the stacks."""
        self.learner.copy_member(self.slot[src], self.slot[dst])
        self.q[dst].clear()

    def get_states(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {i: {"learner": self.get_learner_state(i), "steps": self.steps[i], "recent": self.q[i].state()}
                for i in ids}

    def restore(self, i: int, state: dict[str, Any]) -> None:
        self.learner.set_state(self.slot[i], state["learner"])
        self.steps[i] = int(state["steps"])
        self.q[i].load(state.get("recent", []))

    def reinit(self, i: int) -> None:
        """Member ``i`` back to how the shard built it (a failed member that had not trained yet)."""
        self.learner.set_state(self.slot[i], self._initial[i])  # its spec's hparams come with the state
        self.steps[i] = 0
        self.q[i].clear()

    def set_hparams(self, i: int, hparams: dict[str, Any]) -> None:
        self.learner.set_hparams(self.slot[i], dict(hparams))

    def get_hparams(self, i: int) -> dict[str, Any]:
        return self.learner.get_hparams(self.slot[i])

    def close(self) -> None:
        self.learner.close()


class MemberShard:
    """One member of any learner (the per-member engine), behind the shard protocol."""

    def __init__(self, specs: Sequence[WorkerSpec], cpus: float | None = None):
        (s,) = specs
        self.spec = s
        self.ids = [s.id]
        self.worker = Worker(s.id, s.learner, s.env_id, s.hparams, s.seed, s.env_kwargs, s.q_window_episodes)

    def ping(self) -> list[int]:
        return list(self.ids)

    def train(self, ids: Sequence[int], steps: int, on_progress: Any = None) -> dict[int, TrainReport]:
        return {self.spec.id: self.worker.train(steps)} if self.spec.id in set(ids) else {}

    def progress(self) -> dict[str, Any]:
        return {}  # a per-member learner reports at the end of its train call

    def get_learner_state(self, i: int) -> dict[str, Any]:
        return self.worker.get_learner_state()

    def set_learner_state(self, i: int, state: dict[str, Any]) -> None:
        self.worker.set_learner_state(state)

    def copy(self, src: int, dst: int) -> None:
        raise RuntimeError("a member shard holds one member: copies go between shards")

    def restream(self, i: int, seed: int, epoch: int) -> None:
        """A per-member learner keeps its own streams; its Q window is cleared (as after a copy)."""
        self.worker.q.clear()

    def get_states(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {self.spec.id: self.worker.get_state()} if self.spec.id in set(ids) else {}

    def restore(self, i: int, state: dict[str, Any]) -> None:
        self.worker.restore(state)

    def set_hparams(self, i: int, hparams: dict[str, Any]) -> None:
        self.worker.set_hparams(hparams)

    def get_hparams(self, i: int) -> dict[str, Any]:
        return self.worker.get_hparams()

    def close(self) -> None:
        self.worker.close()
