"""FIRE PBT (Dalibard & Jaderberg 2020, section 3), as a pure, seeded strategy.

Workers: members of sub-populations P1..Pn (ids first, P1 first), then E
evaluators. P1 runs greedy PBT (fitness = latest Q); Pi, i > 1, run PBT with
the evaluator-curve fitness of section 3.1.2; evaluators link Pi to Pi-1
(section 3.2).

One ``decide`` call, in this order (the controller applies decisions in order):

1. **Within-sub-population PBT** when the members are ready (synchronously, as
   the paper's experiments: once every live member is ready). P1 fitness:
   latest Q. Pi fitness: for the members in Phi -- those with an assigned
   evaluator whose curve has at least ``min_curve_points`` points --
   ``sum_k best_score_diff(eta_j, eta_k)`` over the *other* members k of Phi
   (section 3.1.2); members outside Phi are exempt (neither copied nor copied
   from). Truncation (``truncation_pairs``) runs within each sub-population over
   its ranked members; emits ``Exploit`` + ``Explore``.
2. **Release on loss**: an evaluator whose parent or child was just exploited
   stops (``'parent lost evolution'`` / ``'child lost evolution'``).
3. **Evaluator checks**, every ``ready_steps`` of an evaluator's own training
   ``T`` (counted from its assignment), against its child's curve since the
   child's last copy (section 3.2): success when ``score_diff > 0`` and
   ``p < p_stat`` -> ``EvaluatorSuccess`` + ``StopEvaluator('success')``; stop
   when there is no overlap and ``T > max_eval_steps``, or when they overlap
   and ``p > stop_threshold(p_stat, T, max_eval_steps)``.
4. **Assignment** of every free evaluator (including the ones just freed): the
   parent member in P2..Pn with ``steps >= min_steps_before_eval`` of its
   sub-population, with state, without an evaluator, that has trained longest
   since it was last evaluated or last lost an evolution event (ties: lower
   id); child = the best-fitness member of P(i-1).

PBT runs first so a copy never takes weights its fitness was not measured on
(a success applied earlier in the batch would change a source's weights), and
assignment runs last so freed evaluators restart at once (stops before
re-assignments).

Choices where the paper is silent (documented, tested):

- Phi needs an evaluator curve of ``min_curve_points`` (default 2) points; a
  one-point curve says nothing about improvement rate.
- Truncation counts within a parent sub-population are over Phi, not over the
  whole sub-population (only Phi members have a fitness).
- "Last evaluated" is the member's own step count when its evaluator stops (any
  reason); "lost" is its step count when it is exploited. Members start at 0.
- Evaluators *targeting* a child that receives an evaluator success keep going
  (the child's curve restarts; they compare against the new one). Evaluators
  whose *parent* receives a success copy stop (``'parent took new weights'``):
  their curve measures weights the parent no longer has.
- The best child of a parent sub-population P(i-1), i-1 > 1, is the Phi member
  with the highest FIRE fitness; if Phi is empty, the member with the highest
  latest Q. Members exploited in this decide are never chosen as child.
- No overlap means no binomial test, so no success: an evaluator strictly above
  its child is stopped after ``max_eval_steps`` like any non-overlapping one
  (the paper's success needs ``binom_test < p_stat``).
- A check is skipped (and retried at the next decide) while either curve has
  fewer than ``min_curve_points`` points, and when the child already received
  an evaluator success in this decide (its curve is about to restart), so a
  child never gets two successes in one batch.
- ``synchronous=False`` (not the paper's setting) lets ready members be
  exploited as they become ready, as in asynchronous PBT.
- Dead workers: an evaluator that died is dropped from the bookkeeping; one
  whose parent or child died stops (``'parent gone'`` / ``'child gone'``).

GP smoothing is cached per worker within one ``decide`` call (each curve is
fitted once however many comparisons use it), and pairwise ``best_score_diff``
per evaluator pair.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from rlpop import curves
from rlpop.decisions import AssignEvaluator, Decision, EvaluatorSuccess, StopEvaluator
from rlpop.hparams import HParamSpace
from rlpop.strategies.common import (ReadyClock, best_peer, check_int, check_quantile, check_space, check_state_kind,
                                    due, initial_draws, rng_from_state, rng_state)
from rlpop.strategies.pbt import eligible_fitness, exploit_and_explore, truncation_pairs
from rlpop.view import EVALUATOR, MEMBER, PopulationView, WorkerSlot, WorkerView


@dataclass
class Assignment:
    """An evaluator's task: weights from ``parent``, hparams and target ``child``.
    ``start_steps``: the evaluator's step count at assignment (T = steps - start);
    ``last_check``: T at its last stop/success check."""

    parent: int
    child: int
    start_steps: int
    last_check: int = 0


class _Curves:
    """Per-decide cache of GP smoothings (one fit per worker's curve) and evaluator-pair score differences.

    Not kept across ``decide`` calls: a curve compared at a ready step has grown
    since the previous call (members and assigned evaluators add a point every
    round), so a cross-call cache would not hit; and :func:`rlpop.curves.smooth`
    being pure, the decisions are a function of the strategy's state and the
    view alone (a resumed strategy continues exactly).
    """

    def __init__(self, view: PopulationView) -> None:
        self.view = view
        self._smoothed: dict[int, np.ndarray] = {}
        self._diff: dict[tuple[int, int], float] = {}

    def curve(self, wid: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.view[wid]
        return np.asarray(w.curve_steps, dtype=float), np.asarray(w.curve_q, dtype=float)

    def smoothed(self, wid: int) -> np.ndarray:
        if wid not in self._smoothed:
            self._smoothed[wid] = curves.smooth(*self.curve(wid))
        return self._smoothed[wid]

    def score_diff(self, eta: int, kappa: int) -> float:
        """best_score_diff(eta, kappa) between two workers' curves (paper 3.1.1).

        best_score_diff is antisymmetric by construction (the overlap is the same
        section seen from either side; the strictly-above case negates the swap),
        so each unordered pair is computed once.
        """
        key = (eta, kappa)
        if (kappa, eta) in self._diff:
            return -self._diff[(kappa, eta)]
        if key not in self._diff:
            xe, ye = self.curve(eta)
            xk, yk = self.curve(kappa)
            self._diff[key] = float(curves.best_score_diff(xe, ye, xk, yk, yhat_eta=self.smoothed(eta),
                                                           yhat_kappa=self.smoothed(kappa)))
        return self._diff[key]

    def compare(self, eta: int, kappa: int) -> curves.Comparison:
        xe, ye = self.curve(eta)
        xk, yk = self.curve(kappa)
        return curves.compare(xe, ye, xk, yk, yhat_eta=self.smoothed(eta), yhat_kappa=self.smoothed(kappa))


def parent_fitness(phi: Mapping[int, int], score_diff) -> dict[int, float]:
    """Fitness of the members of a parent sub-population (paper 3.1.2):
    ``fitness(rho_j) = sum_{rho_k in Phi, k != j} best_score_diff(eta_j, eta_k)``.

    ``phi`` maps each member of Phi to its evaluator; ``score_diff(eta, kappa)``
    is best_score_diff between two evaluators' curves. Members outside Phi get
    no fitness (they are exempt from evolution).
    """
    return {j: float(sum(score_diff(ej, ek) for k, ek in phi.items() if k != j)) for j, ej in phi.items()}


def _sizes_from(subpops: int | None, subpop_size: int | Sequence[int] | None) -> tuple[int, ...]:
    """Sub-population sizes from ``subpops`` and ``subpop_size`` (one size for all, or a list of one per
    sub-population, which then sets ``subpops``); neither: the paper's RL setting, 18 + 18."""
    if isinstance(subpop_size, Sequence) and not isinstance(subpop_size, (str, bytes)):
        if subpops is not None and subpops != len(subpop_size):
            raise ValueError(f"FIRE: subpops={subpops!r} but subpop_size lists {len(subpop_size)} sizes; give one "
                             "size per sub-population (or one int for all)")
        sizes = tuple(subpop_size)
    elif subpops is None and subpop_size is None:
        sizes = (18, 18)
    elif subpops is None or subpop_size is None:
        raise ValueError("FIRE: subpops and subpop_size go together; give both (e.g. subpops=2, subpop_size=18) "
                         "or a list subpop_size=(18, 18)")
    else:
        sizes = (subpop_size,) * check_int(subpops, "subpops", "FIRE", 0)
    if sum(int(s) for s in sizes if isinstance(s, (int, np.integer))) == 0:
        raise ValueError("FIRE: the population is empty; give subpops=2, subpop_size=18")
    if len(sizes) < 2:
        raise ValueError(f"FIRE: {len(sizes)} sub-population; FIRE PBT needs at least 2 (P1 greedy + "
                         "one parent), e.g. subpops=2; use PBT for a single population")
    return tuple(check_int(s, f"subpop_size[{i}]" if len(set(sizes)) > 1 else "subpop_size", "FIRE", 2)
                 for i, s in enumerate(sizes))


def _min_steps_from(value: Any, n: int) -> dict[int, int]:
    """``min_steps_before_eval`` per parent sub-population 2..n: an int, or one value (all parents), or one per
    parent P2..Pn, or a dict ``{i: steps}``."""
    name = "min_steps_before_eval"
    if value is None:
        return {i: 0 for i in range(2, n + 1)}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return {i: check_int(value, name, "FIRE", 0) for i in range(2, n + 1)}
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, (int, np.integer)) or not 2 <= k <= n]
        if bad:
            raise ValueError(f"FIRE: {name} has keys {bad}; keys are parent sub-population numbers 2..{n}")
        out = {i: 0 for i in range(2, n + 1)}
        out.update({int(k): check_int(v, f"{name}[{k}]", "FIRE", 0) for k, v in value.items()})
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) == 1:
            value = list(value) * (n - 1)
        if len(value) != n - 1:
            raise ValueError(f"FIRE: {name} has {len(value)} values; give one per parent sub-population "
                             f"P2..P{n} ({n - 1} values), or one for all")
        return {i + 2: check_int(v, f"{name}[{i}]", "FIRE", 0) for i, v in enumerate(value)}
    raise ValueError(f"FIRE: {name}={value!r} must be an int, a list for P2..Pn or a dict {{subpop: steps}}")


class FIREStrategy:
    """FIRE PBT: see the module docstring for the exact procedure and choices.

    ``subpops`` sub-populations P1..Pn of ``subpop_size`` members each (the
    paper's experiments: equal sizes, 18 for RL); a list ``subpop_size`` gives
    one size per sub-population. ``evaluators`` defaults to the paper's rule, three
    quarters of the parent members, rounded up (18+18 -> 14, 8x4 -> 18).
    ``min_steps_before_eval``: an int or one value for all parents, a list for
    P2..Pn, or a dict ``{i: steps}``.
    """

    def __init__(self, space: HParamSpace, *, subpops: int | None = None,
                 subpop_size: int | Sequence[int] | None = None,
                 evaluators: int | None = None, ready_steps: int, max_eval_steps: int,
                 min_steps_before_eval: Mapping[int, int] | Sequence[int] | int | None = None,
                 p_stat: float = 0.01, quantile: float = 0.25, seed: int = 0,
                 synchronous: bool = True, min_curve_points: int = 2) -> None:
        check_space(space, "FIRE")
        self.space = space
        self.subpop_sizes = _sizes_from(subpops, subpop_size)
        n = len(self.subpop_sizes)
        if evaluators is None:
            evaluators = math.ceil(0.75 * sum(self.subpop_sizes[1:]))
        self.evaluators = check_int(evaluators, "evaluators", "FIRE", 1)
        self.ready_steps = check_int(ready_steps, "ready_steps", "FIRE", 1)
        self.max_eval_steps = check_int(max_eval_steps, "max_eval_steps", "FIRE", 1)
        self.min_steps_before_eval = _min_steps_from(min_steps_before_eval, n)
        if isinstance(p_stat, bool) or not isinstance(p_stat, (int, float)) or not 0.0 < p_stat < 1.0:
            raise ValueError(f"FIRE: p_stat={p_stat!r} must be in (0, 1) (the paper uses 0.01)")
        self.p_stat = float(p_stat)
        self.quantile = check_quantile(quantile, "FIRE")
        self.seed = check_int(seed, "seed", "FIRE", 0)
        self.synchronous = bool(synchronous)
        self.min_curve_points = check_int(min_curve_points, "min_curve_points", "FIRE", 1)

        roles = [(MEMBER, i) for i, size in enumerate(self.subpop_sizes, start=1) for _ in range(size)]
        roles += [(EVALUATOR, None)] * self.evaluators
        self._slots = [WorkerSlot(wid, role, subpop) for wid, (role, subpop) in enumerate(roles)]
        self._initial = initial_draws(space, len(self._slots), self.seed)
        self._rng = np.random.default_rng([self.seed, 1])
        self._clock = ReadyClock(self.ready_steps)
        self._assign: dict[int, Assignment] = {}
        self._mark: dict[int, int] = {}  # member -> its steps when last evaluated or when it last lost

    # -- protocol ---------------------------------------------------------------------------------
    def layout(self) -> Sequence[WorkerSlot]:
        return list(self._slots)

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        """Members: a draw from the space. Evaluators also get one (the
        controller may build their learner with it), replaced at assignment."""
        return dict(self._initial[worker.id])

    @property
    def assignments(self) -> dict[int, Assignment]:
        """Current evaluator -> assignment (read-only copy, for logs and tests)."""
        return {e: Assignment(**asdict(a)) for e, a in self._assign.items()}

    def decide(self, view: PopulationView) -> list[Decision]:
        cache = _Curves(view)
        out: list[Decision] = []
        out += self._drop_dead(view)
        members = sorted(view.members(), key=lambda w: w.id)

        # 1. within-sub-population PBT (paper 3: "members internally run regular PBT")
        losers: set[int] = set()
        acting = due(self._clock, members, self.synchronous)
        if acting:
            acting_ids = {m.id for m in acting}
            for i in range(1, len(self.subpop_sizes) + 1):
                fit = self._fitness(view, i, cache)
                allowed = None if self.synchronous else acting_ids
                pairs = truncation_pairs(list(fit), list(fit.values()), self.quantile, self._rng, allowed)
                out += exploit_and_explore(pairs, view, self.space, self._rng)
                losers.update(dst for _, dst in pairs)

        # 2. evaluators of members that lost an evolution event stop (paper 3.2, last paragraph)
        for e in sorted(self._assign):
            a = self._assign[e]
            if a.parent in losers or a.child in losers:
                out.append(self._stop(e, view, "parent lost evolution" if a.parent in losers
                                      else "child lost evolution"))
        for dst in losers:
            self._mark[dst] = int(view[dst].steps)

        # 3. stopping and success checks of ready evaluators (paper 3.2)
        new_weights: set[int] = set()
        for e in sorted(self._assign):
            out += self._check(e, view, cache, new_weights)
        for e in sorted(self._assign):
            if self._assign[e].parent in new_weights:
                out.append(self._stop(e, view, "parent took new weights (evaluator success)"))
        for m in new_weights:
            self._mark[m] = int(view[m].steps)

        # 4. free evaluators pick the member least recently evaluated (paper 3, steps 1-2)
        out += self._assign_free(view, members, cache, losers)
        return out

    def replacement(self, view: PopulationView, worker: int) -> int | None:
        """A diverged member copies the best peer of its sub-population (:func:`~rlpop.strategies.common.best_peer`)."""
        return best_peer(view, worker)

    def get_state(self) -> dict[str, Any]:
        return {
            "strategy": "fire_pbt",
            "rng": rng_state(self._rng),
            "last_ready": self._clock.get_state(),
            "assignments": {str(e): asdict(a) for e, a in sorted(self._assign.items())},
            "last_evaluated_or_lost": {str(m): s for m, s in sorted(self._mark.items())},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "fire_pbt", "FIRE")
        self._rng = rng_from_state(state["rng"])
        self._clock.set_state(state["last_ready"])
        self._assign = {int(e): Assignment(**a) for e, a in state["assignments"].items()}
        self._mark = {int(m): int(s) for m, s in state["last_evaluated_or_lost"].items()}

    # -- pieces -----------------------------------------------------------------------------------
    def _stop(self, e: int, view: PopulationView, reason: str) -> StopEvaluator:
        """Free evaluator ``e``; its parent counts as evaluated now."""
        a = self._assign.pop(e)
        if a.parent in view.workers:
            self._mark[a.parent] = int(view[a.parent].steps)
        return StopEvaluator(evaluator=e, reason=reason)

    def _drop_dead(self, view: PopulationView) -> list[Decision]:
        out: list[Decision] = []
        for e in sorted(self._assign):
            a = self._assign[e]
            if e not in view.workers or not view[e].alive:
                del self._assign[e]
            elif a.parent not in view.workers or not view[a.parent].alive:
                out.append(self._stop(e, view, "parent gone"))
            elif a.child not in view.workers or not view[a.child].alive:
                out.append(self._stop(e, view, "child gone"))
        return out

    def _phi(self, view: PopulationView, subpop: int) -> dict[int, int]:
        """Phi of parent sub-population ``subpop``: member -> its evaluator, for
        members whose evaluator curve has >= ``min_curve_points`` points."""
        phi = {}
        for e, a in sorted(self._assign.items()):
            parent = view[a.parent]
            if parent.subpop == subpop and parent.alive and len(view[e].curve_q) >= self.min_curve_points:
                phi[a.parent] = e
        return phi

    def _fitness(self, view: PopulationView, subpop: int, cache: _Curves) -> dict[int, float]:
        """Fitness of the ranked members of ``subpop``: latest Q in P1 (greedy),
        the evaluator-curve sum in parents (paper 3.1.2). Only members with
        state and a finite fitness appear."""
        if subpop == 1:
            return eligible_fitness(view.members(1))
        phi = self._phi(view, subpop)
        fit = parent_fitness(phi, cache.score_diff)
        return {m: f for m, f in fit.items() if view[m].has_state and math.isfinite(f)}

    def _check(self, e: int, view: PopulationView, cache: _Curves, new_weights: set[int]) -> list[Decision]:
        """Paper 3.2: success and stopping criteria of evaluator ``e``, every
        ``ready_steps`` of its training."""
        a = self._assign[e]
        t = int(view[e].steps) - a.start_steps
        if t - a.last_check < self.ready_steps or a.child in new_weights:
            return []  # not ready, or its child's curve restarts (a success this batch): check next time
        if min(len(view[e].curve_q), len(view[a.child].curve_q)) < self.min_curve_points:
            return []
        a.last_check = t
        c = cache.compare(e, a.child)
        if c.score_diff > 0 and c.p_value is not None and c.p_value < self.p_stat:
            new_weights.add(a.child)
            return [EvaluatorSuccess(evaluator=e, child=a.child, p_value=float(c.p_value),
                                     score_diff=float(c.score_diff)),
                    self._stop(e, view, "success")]
        if not c.overlap and t > self.max_eval_steps:
            return [self._stop(e, view, f"no overlap after T={t} > max_eval_steps={self.max_eval_steps}")]
        if c.overlap:
            threshold = curves.stop_threshold(self.p_stat, t, self.max_eval_steps)
            if c.p_value > threshold:
                return [self._stop(e, view, f"p={c.p_value:.3g} > threshold {threshold:.3g} at T={t}")]
        return []

    def _best_child(self, view: PopulationView, subpop: int, cache: _Curves, exclude: set[int]) -> int | None:
        """The highest-fitness member of ``subpop`` (paper 3, step 2); ties: lower id."""
        fit = {m: f for m, f in self._fitness(view, subpop, cache).items() if m not in exclude}
        if not fit and subpop > 1:
            fit = {m: f for m, f in eligible_fitness(view.members(subpop)).items() if m not in exclude}
        if not fit:
            return None
        return min(fit, key=lambda m: (-fit[m], m))

    def _assign_free(self, view: PopulationView, members: list[WorkerView], cache: _Curves,
                     losers: set[int]) -> list[Decision]:
        free = [w.id for w in sorted(view.evaluators(), key=lambda w: w.id) if w.id not in self._assign]
        if not free:
            return []
        busy = {a.parent for a in self._assign.values()}
        candidates = [m for m in members
                      if m.subpop is not None and m.subpop >= 2 and m.has_state and m.id not in busy
                      and m.steps >= self.min_steps_before_eval[m.subpop]]
        candidates.sort(key=lambda m: (-(m.steps - self._mark.get(m.id, 0)), m.id))
        children: dict[int, int | None] = {}
        out: list[Decision] = []
        for parent in candidates:
            if not free:
                break
            if parent.subpop not in children:
                children[parent.subpop] = self._best_child(view, parent.subpop - 1, cache, losers)
            child = children[parent.subpop]
            if child is None:
                continue
            e = free.pop(0)
            self._assign[e] = Assignment(parent=parent.id, child=child, start_steps=int(view[e].steps))
            out.append(AssignEvaluator(evaluator=e, parent=parent.id, child=child))
        return out
