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
from typing import Any, Collection, Iterable, Sequence

import numpy as np

from rlpop.decisions import Decision, Exploit, Explore
from rlpop.hparams import HParamSpace
from rlpop.strategies.common import (ReadyClock, best_peer, check_int, check_quantile, check_space, check_state_kind,
                                    due, initial_draws, rng_from_state, rng_state)
from rlpop.view import MEMBER, PopulationView, WorkerSlot, WorkerView


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


class PBTStrategy:
    """PBT over ``population`` members with a greedy fitness (latest Q).

    Synchronous (default, the paper's setting): decide only once *every* live
    member is ready, then truncation over all. Asynchronous: the members that
    are ready compare against the whole population's latest Q and only they can
    be exploited.
    """

    def __init__(self, space: HParamSpace, population: int, ready_steps: int, seed: int = 0,
                 quantile: float = 0.25, synchronous: bool = True) -> None:
        owner = type(self).__name__.removesuffix("Strategy")  # PBT or PB2, as in the spec
        check_space(space, owner)
        self.space = space
        if isinstance(population, int) and not isinstance(population, bool) and population < 2:
            raise ValueError(f"{owner}: population={population} must be >= 2 ({owner} copies between "
                             "members); use RandomSearch for a single run")
        self.population = check_int(population, "population", owner, 2)
        self.ready_steps = check_int(ready_steps, "ready_steps", owner, 1)
        self.seed = check_int(seed, "seed", owner, 0)
        self.quantile = check_quantile(quantile, owner)
        self.synchronous = bool(synchronous)
        self._initial = initial_draws(space, self.population, self.seed)
        self._rng = np.random.default_rng([self.seed, 1])
        self._clock = ReadyClock(self.ready_steps)

    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(i, MEMBER, 1) for i in range(self.population)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self._initial[worker.id])

    def decide(self, view: PopulationView) -> list[Decision]:
        members = sorted(view.members(), key=lambda w: w.id)
        acting = due(self._clock, members, self.synchronous)
        if not acting:
            return []
        self._observe(acting)
        fit = eligible_fitness(members)
        dst_allowed = None if self.synchronous else {m.id for m in acting}
        pairs = truncation_pairs(list(fit), list(fit.values()), self.quantile, self._rng, dst_allowed)
        return self._exploit_and_explore(pairs, view, acting)

    # -- what a variant of PBT changes (PB2: how it explores) ------------------------------------------
    def _observe(self, acting: list[WorkerView]) -> None:
        """The ready members, before selection (PBT keeps nothing)."""

    def _exploit_and_explore(self, pairs: list[tuple[int, int]], view: PopulationView,
                             acting: list[WorkerView]) -> list[Decision]:
        return exploit_and_explore(pairs, view, self.space, self._rng)

    def replacement(self, view: PopulationView, worker: int) -> int | None:
        """A diverged member copies the best peer of its sub-population (:func:`~rlpop.strategies.common.best_peer`)."""
        return best_peer(view, worker)

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "pbt", "rng": rng_state(self._rng), "last_ready": self._clock.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "pbt", "PBT")
        self._rng = rng_from_state(state["rng"])
        self._clock.set_state(state["last_ready"])
