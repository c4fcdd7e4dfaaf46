"""Decisions a strategy emits and a backend carries out.

Strategies decide, backends do: a strategy never touches a learner; it returns
these plain records, the controller logs them and asks the backend to apply
them. All fields are plain Python values so a decision serialises to JSON for
the run directory's decision log.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


class Target:
    """``target``: the worker a decision acts on, whose step the decision log records (named by ``TARGET``)."""

    TARGET = ""

    @property
    def target(self) -> int:
        return getattr(self, self.TARGET)


@dataclass(frozen=True)
class Exploit(Target):
    """``dst`` discards its state and copies weights, optimiser and normaliser
    state *and* hyperparameters of ``src`` (PBT's exploit step)."""

    src: int
    dst: int
    kind: str = "exploit"
    TARGET = "dst"


@dataclass(frozen=True)
class Explore(Target):
    """``dst`` takes new hyperparameters (applied after any copy in the same
    batch). ``changes`` maps a hparam name to a human-readable description,
    e.g. ``"3e-4 --(x0.8)--> 2.4e-4"``."""

    dst: int
    hparams: Mapping[str, Any]
    changes: Mapping[str, str] = field(default_factory=dict)
    kind: str = "explore"
    TARGET = "dst"


@dataclass(frozen=True)
class AssignEvaluator(Target):
    """FIRE step 1-2: ``evaluator`` copies the weights of ``parent`` and the
    hyperparameters of ``child`` (its target); its curve restarts."""

    evaluator: int
    parent: int
    child: int
    kind: str = "assign"
    TARGET = "evaluator"


@dataclass(frozen=True)
class EvaluatorSuccess(Target):
    """FIRE success: ``child`` copies the weights (full learner state) of
    ``evaluator`` but keeps its own hyperparameters."""

    evaluator: int
    child: int
    p_value: float
    score_diff: float
    kind: str = "success"
    TARGET = "evaluator"


@dataclass(frozen=True)
class StopEvaluator(Target):
    """The evaluator stops and becomes free; ``reason`` is logged."""

    evaluator: int
    reason: str
    kind: str = "stop"
    TARGET = "evaluator"


@dataclass(frozen=True)
class StopTrial(Target):
    """Trial-based strategies (ASHA, HyperBand): ``worker``'s trial ends for good and its slot trains no
    more (what it spent still counts against the run's budget)."""

    worker: int
    reason: str = ""
    kind: str = "stop_trial"
    TARGET = "worker"


@dataclass(frozen=True)
class RestartTrial(Target):
    """Trial-based strategies: ``worker``'s slot starts a new trial -- ``hparams``, newly initialised weights,
    its step counter and curve reset (the slot's budget keeps counting every step it spent before)."""

    worker: int
    hparams: Mapping[str, Any]
    reason: str = ""
    kind: str = "restart_trial"
    TARGET = "worker"


@dataclass(frozen=True)
class FollowCopy(Target):
    """Replay's stand-in for a copy along a lineage: ``worker`` already holds the weights the copy brought (it
    trained them itself), and goes on as the copy's destination ``like`` did -- with ``like``'s streams of
    epoch ``epoch`` (its ``epoch``-th copy received, :mod:`rlpop.streams`), fresh episodes, its Q window
    cleared."""

    worker: int
    like: int
    epoch: int
    kind: str = "follow_copy"
    TARGET = "worker"


Decision = (Exploit | Explore | AssignEvaluator | EvaluatorSuccess | StopEvaluator | StopTrial | RestartTrial
            | FollowCopy)


def to_record(decision: Decision) -> dict[str, Any]:
    """A JSON-ready dict of a decision (``kind`` says which)."""
    rec = asdict(decision)
    for key in ("hparams", "changes"):
        if key in rec:
            rec[key] = dict(rec[key])
    return rec


def describe(decision: Decision, workers: Mapping[int, Any]) -> str:
    """The decision log's sentence for ``decision``; ``workers`` maps ids to objects with ``q`` and
    ``subpop`` (the workers as they were when the decision was taken)."""
    d, w = decision, workers
    if isinstance(d, Exploit):
        return (f"w{d.dst} (Q={w[d.dst].q:.4g}) <- w{d.src} (Q={w[d.src].q:.4g}): "
                "weights, optimiser, normalisers, hparams")
    if isinstance(d, Explore):
        from rlpop.hparams import format_value

        changes = d.changes or {k: format_value(v) for k, v in d.hparams.items()}
        return f"w{d.dst} explore | " + ", ".join(f"{k}: {v}" for k, v in changes.items())
    if isinstance(d, AssignEvaluator):
        return (f"evaluator w{d.evaluator} <- weights of w{d.parent} (P{w[d.parent].subpop}), "
                f"hparams of target w{d.child} (P{w[d.child].subpop})")
    if isinstance(d, EvaluatorSuccess):
        return (f"evaluator w{d.evaluator} SUCCESS: target w{d.child} copies its weights "
                f"(p={d.p_value:.3g}, score diff={d.score_diff:.4g})")
    if isinstance(d, StopEvaluator):
        return f"evaluator w{d.evaluator} stops: {d.reason}"
    if isinstance(d, StopTrial):
        return f"w{d.worker} trial stops (Q={w[d.worker].q:.4g})" + (f": {d.reason}" if d.reason else "")
    if isinstance(d, RestartTrial):
        from rlpop.hparams import format_value

        hp = ", ".join(f"{k}={format_value(v)}" for k, v in d.hparams.items())
        return f"w{d.worker} new trial (Q was {w[d.worker].q:.4g})" + (f": {d.reason}" if d.reason else "") + \
            f" | {hp}"
    if isinstance(d, FollowCopy):
        return f"w{d.worker} goes on as w{d.like} after its copy {d.epoch}: its streams, fresh episodes"
    raise TypeError(f"unknown decision {d!r}")
