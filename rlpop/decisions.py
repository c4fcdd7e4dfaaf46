"""Decisions a strategy emits and a backend carries out.

Strategies decide, backends do: a strategy never touches a learner; it returns
these plain records, the controller logs them and asks the backend to apply
them. All fields are plain Python values so a decision serialises to JSON for
the run directory's decision log.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Exploit:
    """``dst`` discards its state and copies weights, optimiser and normaliser
    state *and* hyperparameters of ``src`` (PBT's exploit step)."""

    src: int
    dst: int
    kind: str = "exploit"


@dataclass(frozen=True)
class Explore:
    """``dst`` takes new hyperparameters (applied after any copy in the same
    batch). ``changes`` maps a hparam name to a human-readable description,
    e.g. ``"3e-4 --(x0.8)--> 2.4e-4"``."""

    dst: int
    hparams: Mapping[str, Any]
    changes: Mapping[str, str] = field(default_factory=dict)
    kind: str = "explore"


@dataclass(frozen=True)
class AssignEvaluator:
    """FIRE step 1-2: ``evaluator`` copies the weights of ``parent`` and the
    hyperparameters of ``child`` (its target); its curve restarts."""

    evaluator: int
    parent: int
    child: int
    kind: str = "assign"


@dataclass(frozen=True)
class EvaluatorSuccess:
    """FIRE success: ``child`` copies the weights (full learner state) of
    ``evaluator`` but keeps its own hyperparameters."""

    evaluator: int
    child: int
    p_value: float
    score_diff: float
    kind: str = "success"


@dataclass(frozen=True)
class StopEvaluator:
    """The evaluator stops and becomes free; ``reason`` is logged."""

    evaluator: int
    reason: str
    kind: str = "stop"


Decision = Exploit | Explore | AssignEvaluator | EvaluatorSuccess | StopEvaluator


def to_record(decision: Decision) -> dict[str, Any]:
    """A JSON-ready dict of a decision (``kind`` says which)."""
    rec = asdict(decision)
    for key in ("hparams", "changes"):
        if key in rec:
            rec[key] = dict(rec[key])
    return rec


_KINDS = {c.kind: c for c in (Exploit, Explore, AssignEvaluator, EvaluatorSuccess, StopEvaluator)}  # type: ignore[attr-defined]


def from_record(rec: Mapping[str, Any]) -> Decision:
    rec = dict(rec)
    cls = _KINDS[rec.pop("kind")]
    return cls(**rec)
