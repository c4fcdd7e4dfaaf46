"""The learner protocol every population member implements (PPO, V-MPO, the toy, adapters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass
class TrainResult:
    """What one ``Learner.train(steps)`` call reports.

    ``steps``: actor (environment) steps actually consumed (>= the request,
    rounded up to whole rollouts). ``episode_returns``: undiscounted returns of
    the episodes that *finished* during the call. ``metrics``: scalar training
    diagnostics (losses, entropy, ...) of the last update, for logging.
    """

    steps: int
    episode_returns: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    #: one dict per learner update made during the call (its diagnostics, plus ``"steps"``: the env
    #: steps that update consumed); the run directory's metrics.csv gets one row per update
    updates: list[dict[str, float]] = field(default_factory=list)
    #: set when this member failed during the call (its env gave NaN/inf, or its loss or weights went
    #: non-finite): the reason, one line; the rest of the result is void and the member stopped training
    failed: str | None = None


#: the start of a ``failed`` reason when the member's own training diverged (loss or weights non-finite)
DIVERGED = "diverged"


def nonfinite_inputs(env_id: str | None, obs: Any, rewards: Any) -> str | None:
    """None when every observation and reward is finite, else a one-line reason naming the env."""
    import numpy as np

    bad = [what for what, x in (("observation", obs), ("reward", rewards))
           if x is not None and not np.isfinite(np.asarray(x, dtype=np.float64)).all()]
    if not bad:
        return None
    return f"env {env_id!r} returned a non-finite {' and '.join(bad)} (NaN or inf); fix the env or wrap it"


def nonfinite_training(metrics: dict[str, float], weights: Any) -> str | None:
    """None when the update's losses and the weights are finite, else a one-line reason (starts "diverged")."""
    import math

    import torch

    bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
    if weights is not None and not bool(torch.isfinite(weights).all()):
        bad.append("weights")
    if not bad:
        return None
    return f"{DIVERGED}: non-finite {', '.join(bad)} after an update (learning rate too high?)"


class Learner(Protocol):
    #: hyperparameters a strategy may change while training (read every update)
    mutable_hparams: ClassVar[frozenset[str]]

    def train(self, steps: int) -> TrainResult: ...

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue training identically: weights,
        optimiser, normalisers, rng, hparams. Picklable (tensors on CPU)."""

    def set_state(self, state: dict[str, Any]) -> None: ...

    def get_hparams(self) -> dict[str, Any]: ...

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        """Takes effect at the next update (optimiser lr included). Unknown or
        immutable names raise ``ValueError`` naming the field."""

    def close(self) -> None: ...

    # Optional: ``export(self, path: str) -> list[str]`` writes the learner's policy in its own format at
    # ``path`` (after ``set_state`` of the member being exported) and returns the paths written; a class
    # attribute ``export_suffix`` (".zip") names the default file's extension. ``rlpop export`` calls it for
    # learners other than rlpop's PPO / V-MPO (whose states it turns into a torch policy file itself) and
    # refuses, in one line, a learner without it. The SB3 and RLlib adapters have it.


def resolve_hparams(learner: str, defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overridden by ``given``; an unknown name raises ValueError listing the valid ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{learner}: unknown hyperparameter(s) {unknown}; valid names: {sorted(defaults)}")
    return {**defaults, **given}


def check_mutable(learner: str, updates: dict[str, Any], known: dict[str, Any],
                  mutable: frozenset[str]) -> None:
    """Raise ValueError for names that are unknown or fixed (they change shapes or processes)."""
    unknown = sorted(set(updates) - set(known))
    if unknown:
        raise ValueError(f"{learner}: unknown hyperparameter(s) {unknown}; valid names: {sorted(known)}")
    fixed = sorted(k for k in updates if k not in mutable and updates[k] != known[k])
    if fixed:
        raise ValueError(f"{learner}: hyperparameter(s) {fixed} are fixed for a learner's lifetime "
                         f"(they change network shapes or env processes); mutable ones: {sorted(mutable)}")


def to_cpu(obj: Any) -> Any:
    """Tensors (nested in dicts and lists, e.g. an optimiser's state) moved to the CPU, for a learner's state."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj
