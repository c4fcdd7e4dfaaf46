"""All workers in the calling process, trained in turn (deterministic)."""
from __future__ import annotations

import traceback
from typing import Any

from rlpop.backends.base import WorkerFailure, WorkerSpec
from rlpop.worker import TrainReport, Worker


def build_worker(spec: WorkerSpec) -> Worker:
    return Worker(spec.id, spec.learner, spec.env_id, spec.hparams, spec.seed, spec.env_kwargs,
                  spec.q_window_episodes)


class InlineBackend:
    name = "inline"

    def __init__(self) -> None:
        self.workers: dict[int, Worker] = {}

    def start(self, specs: list[WorkerSpec]) -> None:
        for s in specs:
            self.workers[s.id] = build_worker(s)

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        out: dict[int, TrainReport | WorkerFailure] = {}
        for i in ids:
            try:
                out[i] = self.workers[i].train(steps)
            except Exception:  # noqa: BLE001 -- reported to the controller, which decides
                out[i] = WorkerFailure(i, traceback.format_exc())
        return out

    def copy_state(self, src: int, dst: int) -> None:
        self.workers[dst].set_learner_state(self.workers[src].get_learner_state())

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None:
        self.workers[worker].set_hparams(hparams)

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        return {i: self.workers[i].get_state() for i in ids}

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        self.workers[worker].restore(state)

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        old = self.workers.pop(spec.id, None)
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001
                pass
        self.workers[spec.id] = build_worker(spec)
        if state is not None:
            self.workers[spec.id].restore(state)

    def close(self) -> None:
        for w in self.workers.values():
            w.close()
        self.workers.clear()
