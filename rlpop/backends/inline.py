"""Every shard in the calling process, trained in turn (deterministic).

With a batched learner (PPO) the whole population is one shard by default: one
process, one batched policy, one batched update. Other learners run one member
per shard, one after the other.
"""
from __future__ import annotations

import math
import traceback
from typing import Any, Callable

from rlpop.backends.base import WorkerFailure, WorkerSpec
from rlpop.shard import BatchShard, MemberShard, split, use_batched
from rlpop.worker import TrainReport


class InlineBackend:
    name = "inline"

    def __init__(self, engine: str = "auto", shard_size: int = 0) -> None:
        self.engine = engine
        self.shard_size = int(shard_size or 0)
        self.where: dict[int, BatchShard | MemberShard] = {}
        self.batched = False
        #: called with {"steps", "target", "t0"} after every batched update during a round (progress lines)
        self.on_progress: Callable[[dict[str, Any]], None] | None = None

    @property
    def shards(self) -> list[BatchShard | MemberShard]:
        return list({id(s): s for s in self.where.values()}.values())

    def start(self, specs: list[WorkerSpec]) -> None:
        self.batched = use_batched(specs[0].learner if specs else None, self.engine)
        if self.batched:
            n = math.ceil(len(specs) / self.shard_size) if self.shard_size else 1
            groups, cls = split(specs, n), BatchShard
        else:
            groups, cls = [[s] for s in specs], MemberShard
        for g in groups:
            shard = cls(g)
            for s in g:
                self.where[s.id] = shard

    def _by_shard(self, ids: list[int]) -> list[tuple[Any, list[int]]]:
        out: dict[int, tuple[Any, list[int]]] = {}
        for i in ids:
            sh = self.where[i]
            out.setdefault(id(sh), (sh, []))[1].append(i)
        return list(out.values())

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        out: dict[int, TrainReport | WorkerFailure] = {}
        for shard, group in self._by_shard(ids):
            try:
                out.update(shard.train(group, steps, self.on_progress))
            except Exception:  # noqa: BLE001 -- reported to the controller, which decides
                tb = traceback.format_exc()
                out.update({i: WorkerFailure(i, tb) for i in group})
        return out

    def copy_state(self, src: int, dst: int) -> None:
        a, b = self.where[src], self.where[dst]
        if a is b:
            a.copy(src, dst)
        else:
            b.set_learner_state(dst, a.get_learner_state(src))

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None:
        self.where[worker].set_hparams(worker, hparams)

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for shard, group in self._by_shard(ids):
            out.update(shard.get_states(group))
        return {i: out[i] for i in ids}

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        self.where[worker].restore(worker, state)

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        shard = self.where[spec.id]
        if isinstance(shard, BatchShard):  # the process lives on: the member is restored in place
            if state is not None:
                shard.restore(spec.id, state)
            else:
                shard.reinit(spec.id)
            return
        try:
            shard.close()
        except Exception:  # noqa: BLE001
            pass
        self.where[spec.id] = MemberShard([spec])
        if state is not None:
            self.where[spec.id].restore(spec.id, state)

    def close(self) -> None:
        for s in self.shards:
            s.close()
        self.where.clear()
