"""What every strategy needs: argument checks, the initial draws, the ready clock and RNG state.

One vocabulary from the experiment file to the strategy: the spec classes of
:mod:`rlpop.experiment` pass their fields to the strategies under the same
names (``population``, ``ready_steps``, ``quantile``, ``subpops``,
``subpop_size``, ``evaluators``, ...).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlpop.hparams import HParamSpace
from rlpop.view import MEMBER, PopulationView, WorkerView


def check_space(space: Any, owner: str) -> None:
    """``ValueError`` unless ``space`` is an ``HParamSpace``."""
    if not isinstance(space, HParamSpace):
        raise ValueError(f"{owner}: space must be an HParamSpace (got {type(space).__name__}); "
                         "wrap the dict: HParamSpace({'lr': LogUniform(1e-5, 1e-3), ...})")


def check_int(value: Any, name: str, owner: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_quantile(quantile: Any, owner: str) -> float:
    """``quantile`` as a float in (0, 0.5], else ``ValueError``."""
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 < quantile <= 0.5:
        raise ValueError(f"{owner}: quantile={quantile!r} must be in (0, 0.5] "
                         "(the paper's truncation selector uses 0.25)")
    return float(quantile)


def initial_draws(space: HParamSpace, n_workers: int, seed: int) -> list[dict[str, Any]]:
    """Initial hyperparameters of workers 0..n-1, drawn up front from a stream
    of their own (seed, 0), so ``initial_hparams`` neither depends on the order
    it is called in nor consumes the decision rng."""
    rng = np.random.default_rng([seed, 0])
    return [space.sample(rng) for _ in range(n_workers)]


def best_peer(view: PopulationView, worker: int) -> int | None:
    """The member a diverged member ``worker`` copies (PBT, FIRE): the best live member of its sub-population with
    state and a finite reported Q, among those whose hparams differ from its own when there are any (a copy of the
    same hparams would diverge the same way); None for an evaluator or without one."""
    w = view[worker]
    peers = [o for o in view.members(w.subpop) if o.has_state and o.id != w.id and math.isfinite(o.reported_q)]
    best = max(peers, key=lambda o: (dict(o.hparams) != dict(w.hparams), o.reported_q, -o.id), default=None)
    return None if w.role != MEMBER or best is None else best.id


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-ready state of a numpy Generator."""
    return rng.bit_generator.state


def check_state_kind(state: Mapping[str, Any], kind: str, owner: str, key: str = "strategy") -> None:
    """Refuse a saved state that belongs to another strategy (or, ``key="sampler"``, another sampler): a resume
    with the wrong one."""
    got = state.get(key) if isinstance(state, Mapping) else type(state).__name__
    if not isinstance(state, Mapping) or got != kind:
        raise ValueError(f"{owner}.set_state: state is for {key} {got!r}, not {kind!r}; "
                         f"resume with the {key} the run was started with")


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A numpy Generator restored from :func:`rng_state`."""
    rng = np.random.default_rng()
    rng.bit_generator.state = dict(state)
    return rng


class ReadyClock:
    """When each member is "ready" (paper: every ``ready_steps`` of its own
    training): ``steps - last_ready >= ready_steps``."""

    def __init__(self, ready_steps: int) -> None:
        self.ready_steps = ready_steps
        self.last_ready: dict[int, int] = {}

    def ready(self, members: Iterable[WorkerView]) -> list[WorkerView]:
        return [m for m in members if m.steps - self.last_ready.get(m.id, 0) >= self.ready_steps]

    def mark(self, members: Iterable[WorkerView]) -> None:
        for m in members:
            self.last_ready[m.id] = int(m.steps)

    def get_state(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.last_ready.items())}

    def set_state(self, state: Mapping[str, int]) -> None:
        self.last_ready = {int(k): int(v) for k, v in state.items()}


def due(clock: ReadyClock, members: Sequence[WorkerView], synchronous: bool) -> list[WorkerView]:
    """Members that take part in an evolution event now, and mark them.
    Synchronous (the paper's setting): all live members once every one is ready,
    else none. Asynchronous: whichever are ready."""
    ready = clock.ready(members)
    if not ready or (synchronous and len(ready) < len(members)):
        return []
    clock.mark(ready)
    return ready
