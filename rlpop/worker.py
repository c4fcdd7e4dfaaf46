"""A worker: one learner plus its Q bookkeeping; how one is built and how one fails. Knows nothing of populations."""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlpop.streams import without_streams


@dataclass(frozen=True)
class WorkerSpec:
    """How to (re)build a worker process."""

    id: int
    learner: str
    env_id: str | None
    hparams: dict[str, Any]
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    q_window_episodes: int = 10


@dataclass
class WorkerFailure:
    """A worker that failed during ``train``. ``kind``: its learner ``"raised"``; its process ``"died"``; it gave
    no result within worker_timeout_s (``"stalled"``); its training ``"diverged"`` (non-finite loss or weights);
    its env failed (``"env_failed"``: raised, stalled or died in an env process, or gave NaN/inf). ``reason``:
    one line; ``detail``: the whole text (a traceback) for the decision log."""

    worker: int
    kind: str
    reason: str
    detail: str = ""

    @classmethod
    def of(cls, worker: int, kind: str, text: str) -> "WorkerFailure":
        """A failure from its text (a traceback, or an error's message that carries a remote one)."""
        return cls(worker, kind, failure_line(text), text)

    @classmethod
    def caught(cls, worker: int, exc: BaseException, text: str) -> "WorkerFailure":
        """The failure of a train call that raised ``exc`` (``text``: its traceback): an env process's error is
        ``env_failed``, anything else ``raised``."""
        from rlpop.agents.envbank import BankError

        return cls.of(worker, "env_failed" if isinstance(exc, BankError) else "raised", text)

    @classmethod
    def learner(cls, worker: int, failed: str) -> "WorkerFailure":
        """A learner's own report of a failed member (``TrainResult.failed``; ``diverged: ...`` when its training
        diverged, else its env gave NaN/inf)."""
        from rlpop.agents.base import DIVERGED

        return cls.of(worker, "diverged" if failed.startswith(DIVERGED) else "env_failed", failed)


def failure_line(text: str, limit: int = 600) -> str:
    """One line of a failure's text: a traceback's last exception line with any lines its message continues on
    (joined) -- a remote traceback's, when an error carries one in its message -- else the last non-empty line."""
    import re

    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    starts = [i for i, ln in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: |$)", ln)]
    out = " ".join(lines[starts[-1]:]) if starts else lines[-1]
    return out if len(out) <= limit else out[:limit - 3] + "..."


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


class QTracker:
    """Q, the paper's objective ("the average episode return"), from the episodes of each ``train`` call.

    Q is the mean return of the episodes that finished during the call; when
    none finished, the mean of the last ``window`` episodes since the last
    copy; NaN before any episode finished.
    """

    def __init__(self, window: int = 10):
        self.recent: deque[float] = deque(maxlen=max(1, window))

    def record(self, episode_returns: list[float]) -> float:
        self.recent.extend(episode_returns)
        if episode_returns:
            return float(np.mean(episode_returns))
        if self.recent:
            return float(np.mean(self.recent))
        return math.nan

    def clear(self) -> None:
        self.recent.clear()

    def state(self) -> list[float]:
        return list(self.recent)

    def load(self, recent: list[float]) -> None:
        self.recent.clear()
        self.recent.extend(recent)


class Worker:
    """Owns one learner (``rlpop.agents.make_learner``).

    Q is kept by a :class:`QTracker` over the last ``q_window_episodes`` episodes.
    """

    def __init__(self, worker_id: int, learner: str, env_id: str | None, hparams: dict[str, Any], seed: int,
                 env_kwargs: dict[str, Any] | None = None, q_window_episodes: int = 10):
        from rlpop.agents import make_learner

        self.id = worker_id
        self.learner = make_learner(learner, env_id, hparams, seed, env_kwargs)
        self.steps = 0
        self.q = QTracker(q_window_episodes)

    def train(self, steps: int) -> TrainReport | WorkerFailure:
        t0 = time.perf_counter()
        res = self.learner.train(int(steps))
        if not (hasattr(res, "steps") and hasattr(res, "episode_returns")):
            raise TypeError(f"{type(self.learner).__name__}.train() returned {type(res).__name__}, not a TrainResult; return "
                            "rlpop.agents.base.TrainResult(steps, episode_returns=[...]) (docs/learners.md)")
        if getattr(res, "failed", None):
            return WorkerFailure.learner(self.id, res.failed)
        self.steps += int(res.steps)
        q = self.q.record(res.episode_returns)
        return TrainReport(self.id, self.steps, q, len(res.episode_returns), time.perf_counter() - t0,
                           dict(res.metrics), list(getattr(res, "updates", []) or []))

    def get_state(self) -> dict[str, Any]:
        """Learner state plus the worker's step counter (checkpoints)."""
        return {"learner": self.learner.get_state(), "steps": self.steps, "recent": self.q.state()}

    def get_learner_state(self) -> dict[str, Any]:
        """Learner state only (what an exploit copies)."""
        return self.learner.get_state()

    def set_learner_state(self, state: dict[str, Any]) -> None:
        """Copy another worker's learner into this one (its own step counter and streams are kept)."""
        self.learner.set_state(without_streams(state))
        self.q.clear()

    def restore(self, state: dict[str, Any]) -> None:
        """Restore from this worker's own checkpoint."""
        self.learner.set_state(state["learner"])
        self.steps = int(state["steps"])
        self.q.load(state.get("recent", []))

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        self.learner.set_hparams(dict(hparams))

    def get_hparams(self) -> dict[str, Any]:
        return self.learner.get_hparams()

    def close(self) -> None:
        self.learner.close()
