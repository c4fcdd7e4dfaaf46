"""The strategy protocol: decide, never do."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from rlpop.decisions import Decision
from rlpop.view import PopulationView, WorkerSlot


class Strategy(Protocol):
    """A population strategy (RS, PBT, FIRE PBT).

    Pure and seeded: the same seed and the same sequence of views give the
    same decisions. No I/O, no learners. The controller calls ``decide`` after
    every round of Q evaluations (every ``eval_steps`` actor steps of every
    worker); the strategy itself knows when a worker is "ready".
    """

    def layout(self) -> Sequence[WorkerSlot]:
        """The workers of the run: ids 0..N-1 with their role and sub-population."""

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        """Hyperparameters a worker starts with (sampled from the space)."""

    def decide(self, view: PopulationView) -> list[Decision]:
        """Decisions to carry out now, in order."""

    def replacement(self, view: PopulationView, worker: int) -> int | None:
        """The worker whose state a diverged ``worker`` copies (its hparams too), or None: rebuild it from its
        last checkpoint."""

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state (rng included) so a resumed run decides identically."""

    def set_state(self, state: dict[str, Any]) -> None: ...
