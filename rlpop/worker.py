"""A worker: one learner plus its Q bookkeeping. Knows nothing of populations."""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainReport:
    """One ``Worker.train`` call: the worker's total steps after it, Q, and diagnostics."""

    worker: int
    steps: int
    q: float
    episodes: int
    train_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    updates: list[dict[str, float]] = field(default_factory=list)


class Worker:
    """Owns one learner (``rlpop.agents.make_learner``).

    Q (the paper's objective, "the average episode return") is the mean return
    of the episodes that finished during the last ``train`` call; when none
    finished, the mean of the last ``q_window_episodes`` episodes since the
    worker's last copy; NaN before any episode finished.
    """

    def __init__(self, worker_id: int, learner: str, env_id: str | None, hparams: dict[str, Any], seed: int,
                 env_kwargs: dict[str, Any] | None = None, q_window_episodes: int = 10):
        from rlpop.agents import make_learner

        self.id = worker_id
        self.learner = make_learner(learner, env_id, hparams, seed, env_kwargs)
        self.steps = 0
        self.recent: deque[float] = deque(maxlen=max(1, q_window_episodes))

    def train(self, steps: int) -> TrainReport:
        t0 = time.perf_counter()
        res = self.learner.train(int(steps))
        self.steps += int(res.steps)
        self.recent.extend(res.episode_returns)
        if res.episode_returns:
            q = float(np.mean(res.episode_returns))
        elif self.recent:
            q = float(np.mean(self.recent))
        else:
            q = math.nan
        return TrainReport(self.id, self.steps, q, len(res.episode_returns), time.perf_counter() - t0,
                           dict(res.metrics), list(getattr(res, "updates", []) or []))

    def get_state(self) -> dict[str, Any]:
        """Learner state plus the worker's step counter (checkpoints)."""
        return {"learner": self.learner.get_state(), "steps": self.steps, "recent": list(self.recent)}

    def get_learner_state(self) -> dict[str, Any]:
        """Learner state only (what an exploit copies)."""
        return self.learner.get_state()

    def set_learner_state(self, state: dict[str, Any]) -> None:
        """Copy another worker's learner into this one (its own step counter is kept)."""
        self.learner.set_state(state)
        self.recent.clear()

    def restore(self, state: dict[str, Any]) -> None:
        """Restore from this worker's own checkpoint."""
        self.learner.set_state(state["learner"])
        self.steps = int(state["steps"])
        self.recent.clear()
        self.recent.extend(state.get("recent", []))

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        self.learner.set_hparams(dict(hparams))

    def get_hparams(self) -> dict[str, Any]:
        return self.learner.get_hparams()

    def close(self) -> None:
        self.learner.close()

    def ping(self) -> int:
        return self.id
