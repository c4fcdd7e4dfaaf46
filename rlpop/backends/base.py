"""The backend protocol."""
from __future__ import annotations

from typing import Any, Protocol

from rlpop.worker import TrainReport, WorkerFailure, WorkerSpec

__all__ = ["Backend", "WorkerFailure", "WorkerSpec"]


class Backend(Protocol):
    def start(self, specs: list[WorkerSpec]) -> None: ...

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        """Train every worker in ``ids`` for ``steps`` actor steps (in parallel where the backend can)."""

    def copy_state(self, src: int, dst: int) -> None:
        """``dst``'s learner takes ``src``'s full learner state (weights, optimiser, normalisers, hparams)."""

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None: ...

    def restream(self, worker: int, seed: int, epoch: int) -> None:
        """``worker`` continues with the streams of member seed ``seed`` at ``epoch`` and fresh episodes
        (:class:`rlpop.decisions.FollowCopy`)."""

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Checkpoint states (learner + step counter)."""

    def peek_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The same states, not taken as checkpoints (a backend that restores dead workers from the last states
        it handed out does not restore them from these: the run's kept best states)."""

    def restore(self, worker: int, state: dict[str, Any]) -> None: ...

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        """Replace a failed worker by a fresh one, restored from ``state`` if given."""

    def close(self) -> None: ...
