"""Population Based Training (Jaderberg et al. 2017) with the truncation
selector of the FIRE PBT paper (section 4: "If a population member has a
fitness in the bottom 25% of the population it copies the neural network
weights and hyperparameters of a random member in the top 25%").

Truncation sizes: among the ``n`` members that have a fitness (finite value),
``k = max(1, floor(quantile * n))`` are the bottom and ``k`` the top, when
``n >= 2`` (``n < 2``: nothing happens). With ``quantile <= 0.5`` the two sets
never overlap. Ranking is by fitness, ties by worker id. A bottom member copies
a top member drawn uniformly among those *strictly fitter* than itself; if there
is none (all tied) it is left alone -- copying an equally fit member would only
throw its weights away.
"""
from __future__ import annotations

import math
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from rlpop.decisions import Decision, Exploit, Explore
from rlpop.hparams import HParamSpace
from rlpop.strategies.random_search import check_int, check_space, initial_draws
from rlpop.view import MEMBER, PopulationView, WorkerSlot, WorkerView


def check_quantile(quantile: Any, owner: str) -> float:
    """``quantile`` as a float in (0, 0.5], else ``ValueError``."""
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 < quantile <= 0.5:
        raise ValueError(f"{owner}: quantile={quantile!r} must be in (0, 0.5] "
                         "(the paper's truncation selector uses 0.25)")
    return float(quantile)


def truncation_count(n: int, quantile: float) -> int:
    """Size of the bottom (and of the top) set for ``n`` ranked members:
    ``max(1, floor(quantile * n))`` when ``n >= 2``, else 0."""
    if n < 2:
        return 0
    return max(1, math.floor(quantile * n + 1e-9))


def truncation_pairs(ids: Sequence[int], fitness: Sequence[float], quantile: float,
                     rng: np.random.Generator, dst_allowed: Collection[int] | None = None
                     ) -> list[tuple[int, int]]:
    """PBT's truncation selection (paper section 4, "Exploit"): ``(src, dst)``
    pairs where each ``dst`` in the bottom ``quantile`` of ``ids`` by ``fitness``
    copies a ``src`` drawn uniformly from the top ``quantile``.

    Members with a non-finite fitness are not ranked (never src, never dst);
    sizes follow :func:`truncation_count` over the ranked ones. A ``dst`` only
    copies a strictly fitter ``src``. ``dst_allowed`` (asynchronous PBT: the
    members that are ready now) restricts which bottom members act. Pairs are
    returned worst ``dst`` first; the rng is used once per pair.
    """
    if len(ids) != len(fitness):
        raise ValueError(f"truncation_pairs: {len(ids)} ids but {len(fitness)} fitness values; "
                         "pass one fitness per id")
    ranked = sorted(((float(f), int(i)) for i, f in zip(ids, fitness) if math.isfinite(float(f))))
    k = truncation_count(len(ranked), quantile)
    if k == 0:
        return []
    bottom, top = ranked[:k], ranked[-k:]
    pairs: list[tuple[int, int]] = []
    for f_dst, dst in bottom:
        if dst_allowed is not None and dst not in dst_allowed:
            continue
        better = [i for f, i in top if f > f_dst]
        if better:
            pairs.append((better[int(rng.integers(len(better)))], dst))
    return pairs


def exploit_and_explore(pairs: Iterable[tuple[int, int]], view: PopulationView, space: HParamSpace,
                        rng: np.random.Generator) -> list[Decision]:
    """``Exploit(src, dst)`` then ``Explore(dst, perturbed hparams of src)`` per pair (paper section 2)."""
    out: list[Decision] = []
    for src, dst in pairs:
        new, changes = space.perturb(view[src].hparams, rng)
        out.append(Exploit(src=src, dst=dst))
        out.append(Explore(dst=dst, hparams=new, changes=changes))
    return out


def eligible_fitness(members: Iterable[WorkerView]) -> dict[int, float]:
    """Greedy fitness (latest Q) of the members that can take part in truncation
    selection: they have state and a finite latest Q; the others are left out."""
    out: dict[int, float] = {}
    for m in members:
        if m.has_state and math.isfinite(m.q):
            out[m.id] = m.q
    return out


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-ready state of a numpy Generator."""
    return rng.bit_generator.state


def check_state_kind(state: Mapping[str, Any], kind: str, owner: str) -> None:
    """Refuse a saved strategy state that belongs to another strategy (a resume with the wrong one)."""
    if state.get("strategy") != kind:
        raise ValueError(f"{owner}.set_state: state is for strategy {state.get('strategy')!r}, not {kind!r}; "
                         "resume with the strategy the run was started with")


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


class PBT:
    """PBT over ``population_size`` members with a greedy fitness (latest Q).

    Synchronous (default, the paper's setting): decide only once *every* live
    member is ready, then truncation over all. Asynchronous: the members that
    are ready compare against the whole population's latest Q and only they can
    be exploited.
    """

    def __init__(self, space: HParamSpace, population_size: int, ready_steps: int, seed: int = 0,
                 quantile: float = 0.25, synchronous: bool = True) -> None:
        check_space(space, "PBT")
        self.space = space
        if isinstance(population_size, int) and not isinstance(population_size, bool) and population_size < 2:
            raise ValueError(f"PBT: population_size={population_size} must be >= 2 (PBT copies between "
                             "members); use RandomSearch for a single run")
        self.population_size = check_int(population_size, "population_size", "PBT", 2)
        self.ready_steps = check_int(ready_steps, "ready_steps", "PBT", 1)
        self.seed = check_int(seed, "seed", "PBT", 0)
        self.quantile = check_quantile(quantile, "PBT")
        self.synchronous = bool(synchronous)
        self._initial = initial_draws(space, self.population_size, self.seed)
        self._rng = np.random.default_rng([self.seed, 1])
        self._clock = ReadyClock(self.ready_steps)

    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(i, MEMBER, 1) for i in range(self.population_size)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self._initial[worker.id])

    def decide(self, view: PopulationView) -> list[Decision]:
        members = sorted(view.members(), key=lambda w: w.id)
        acting = due(self._clock, members, self.synchronous)
        if not acting:
            return []
        fit = eligible_fitness(members)
        dst_allowed = None if self.synchronous else {m.id for m in acting}
        pairs = truncation_pairs(list(fit), list(fit.values()), self.quantile, self._rng, dst_allowed)
        return exploit_and_explore(pairs, view, self.space, self._rng)

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "pbt", "rng": rng_state(self._rng), "last_ready": self._clock.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "pbt", "PBT")
        self._rng = rng_from_state(state["rng"])
        self._clock.set_state(state["last_ready"])
