"""The read-only picture of a population that a strategy decides on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

MEMBER = "member"
EVALUATOR = "evaluator"


@dataclass(frozen=True)
class WorkerSlot:
    """A worker's fixed place in the population, set by ``Strategy.layout``.

    ``subpop`` is 1..n for members (1 = the greedy sub-population) and ``None``
    for evaluators (and for every worker of RS / PBT it is 1).
    """

    id: int
    role: str = MEMBER
    subpop: int | None = 1


@dataclass(frozen=True)
class WorkerView:
    """One worker as a strategy sees it.

    ``curve_steps``/``curve_q`` hold the Q evaluations (actor step, mean
    episode return) *since the worker's last copy* (exploit, evaluator
    assignment, or evaluator success) -- the paper's "training curve".
    ``steps`` is the worker's own actor-step counter (never reset by copies).
    ``has_state`` is False until the worker has trained at least once, so a
    strategy never asks to copy a member with no weights. Trial-based
    strategies restart a slot (``RestartTrial``): ``steps`` and the curve
    start again from 0 and ``spent`` keeps what the slot used before.
    """

    id: int
    role: str
    subpop: int | None
    steps: int
    hparams: Mapping[str, Any]
    curve_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_q: np.ndarray = field(default_factory=lambda: np.zeros(0))
    has_state: bool = False
    alive: bool = True
    trial: int = 0          # trial-based strategies: how many times the slot was restarted (RestartTrial)
    spent: int = 0          # actor steps of the slot's earlier trials (steps counts the current trial's)
    stopped: bool = False   # the slot's trial was stopped for good (StopTrial)
    #: the Q the controller holds for it: its last train call's (a copy keeps it; a diverged member's replacement
    #: takes its source's), where ``q`` is its curve's last point (NaN after a copy)
    reported_q: float = float("nan")

    @property
    def q(self) -> float:
        """The latest Q (NaN when the curve is empty)."""
        return float(self.curve_q[-1]) if len(self.curve_q) else float("nan")


@dataclass(frozen=True)
class PopulationView:
    """All workers, indexed by id, at one synchronisation point."""

    workers: Mapping[int, WorkerView]

    def members(self, subpop: int | None = None) -> list[WorkerView]:
        return [w for w in self.workers.values() if w.role == MEMBER and w.alive
                and (subpop is None or w.subpop == subpop)]

    def evaluators(self) -> list[WorkerView]:
        return [w for w in self.workers.values() if w.role == EVALUATOR and w.alive]

    def __getitem__(self, worker_id: int) -> WorkerView:
        return self.workers[worker_id]
