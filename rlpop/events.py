"""What a run tells its listeners: small records the controller emits as it goes.

The controller decides nothing and displays nothing; it carries out the
strategy's decisions and emits one of these records at each step of a run.
The live display, the TensorBoard writer, the failure lines on stderr, the
benchmarks' timers -- and any logger a user adds (Weights & Biases, MLflow) --
subscribe with ``Controller.subscribe(listener)`` and read only these records,
never the controller (SB3's callbacks are the model)::

    def to_wandb(event):
        if isinstance(event, RoundFinished):
            wandb.log({"best_q": event.best_q, "round": event.round})

    controller.subscribe(to_wandb)

Records are frozen and carry plain values: a listener cannot change the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from rlpop.decisions import Decision


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as the round left it."""

    id: int
    role: str             # "member" | "evaluator"
    subpop: int | None
    steps: int
    q: float
    hparams: Mapping[str, Any]
    copies: int
    alive: bool
    assigned: bool        # evaluators: evaluating now
    spent: int = 0        # trial-based strategies: actor steps of the slot's earlier trials
    trial: int = 0
    stopped: bool = False

    @property
    def used(self) -> int:
        """Actor steps of the slot's budget used so far (every trial's)."""
        return self.spent + self.steps


@dataclass(frozen=True)
class RunInfo:
    """What does not change during a run."""

    name: str
    method: str           # "single" | "rs" | "pbt" | "fire"
    env: str | None
    learner: str
    total_steps: int
    hparam_names: tuple[str, ...]
    run_dir: str


@dataclass(frozen=True)
class RoundFinished:
    """Every worker that trained this round added a point; the strategy decided; its decisions were applied.

    ``timings``: seconds of this round in each phase -- ``train`` (the backend's train call), ``record``
    (curves and metrics written), ``decide`` (the strategy), ``apply`` (decisions carried out and logged),
    ``checkpoint`` (0 when none was saved).
    """

    info: RunInfo
    round: int
    wall_s: float                          # the run's wall time (a resumed run's earlier time included)
    train_s: float                         # the run's total time inside the backend's train calls
    done: bool
    workers: tuple[WorkerStatus, ...]
    counts: Mapping[str, int]              # exploit, success, assign, stop, failure -- run totals
    reports: Mapping[int, Any]             # this round's TrainReport per worker that trained
    decisions: tuple[Decision, ...]
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def members(self) -> tuple[WorkerStatus, ...]:
        return tuple(w for w in self.workers if w.role == "member")

    @property
    def env_steps(self) -> int:
        """Actor steps of every worker so far (evaluators and earlier trials included)."""
        return sum(w.used for w in self.workers)

    @property
    def best_q(self) -> float:
        """The highest latest Q of a live member (NaN before any)."""
        return max((w.q for w in self.members if w.alive and not math.isnan(w.q)), default=math.nan)

    @property
    def fraction_done(self) -> float:
        """The slowest live member's share of the actor-step budget."""
        live = [w.used for w in self.members if w.alive and not w.stopped]
        return min(min(live) / self.info.total_steps, 1.0) if live else 1.0


@dataclass(frozen=True)
class RunStarted:
    info: RunInfo
    round: int            # 0, or the round a resumed run continues from
    resumed: bool
    status: RoundFinished  # the population as it starts (a resumed run's as its checkpoint left it)
    start_s: float = 0.0   # seconds spent building the workers (processes, envs, learners)


@dataclass(frozen=True)
class DecisionApplied:
    """One decision carried out: its record (as in decisions.jsonl) and the sentence that tells it."""

    round: int
    step: int
    decision: Decision
    record: Mapping[str, Any]
    text: str


@dataclass(frozen=True)
class WorkerFailed:
    """A worker failed (``kind``: raised, died, stalled, diverged, env_failed -- :class:`rlpop.worker.WorkerFailure`);
    ``action`` is what the controller did about it."""

    round: int
    worker: int
    reason: str           # one line
    action: str           # "replaced" | "rebuilt" | "dropped"
    text: str
    kind: str = "raised"


@dataclass(frozen=True)
class CheckpointSaved:
    round: int
    seconds: float


Event = RunStarted | RoundFinished | DecisionApplied | WorkerFailed | CheckpointSaved
Listener = Callable[[Event], None]


def stderr_failures(event: Event) -> None:
    """The default console listener: one line on stderr per failed worker, as it happens."""
    import sys

    if isinstance(event, WorkerFailed):
        print(f"round {event.round}: {event.text}", file=sys.stderr, flush=True)
