"""ASHA: asynchronous successive halving (Li et al. 2018, "A System for Massively
Parallel Hyperparameter Tuning"), in the *stopping* form of Ray Tune's
``ASHAScheduler`` / ``AsyncHyperBandScheduler``; ``brackets > 1`` is async
HyperBand.

Each of the ``population`` slots runs one trial at a time. A trial gets its
configuration from the sampler and a bracket when it starts. Bracket ``s`` has
rungs at ``grace_period * reduction_factor**(k + s)`` actor steps (k = 0, 1, ...)
below ``max_t`` (:func:`rung_milestones`). When the trial's ``steps`` first
reach or pass a rung, its latest Q is recorded there and the cutoff applied; a
trial that is cut, or that reaches ``max_t`` (completed), is told to the
sampler and its slot at once starts a new trial (``RestartTrial``) -- or stops
(``StopTrial``) when the sampler has nothing more to propose.

Rules (where the paper, Ray and this module differ):

* **Cutoff = Ray's** ``_Bracket.cutoff``/``on_result``: the ``(1 - 1/rf)``
  quantile (linear interpolation, numpy's default) of the values recorded at
  the rung *before* this trial; the trial is cut iff its value is below it. The
  first trial at a rung always continues (no cutoff), so the second is cut iff
  it is below the first, and so on: who is cut depends on the arrival order.
  (Not the paper's promotion rule "top ``floor(n/rf)`` of the ``n`` recorded",
  which would have to pause trials; and not "no cutoff below rf records" --
  Ray applies a cutoff from the second record on.) A quantile position within
  1e-9 of an integer is rounded to it, so a value equal to a recorded one at
  that position continues (numpy's float noise, e.g. ``(1 - 1/3) * 3 =
  2.0000000000000004``, would cut it).
* **NaN** (no Q, or a diverged learner) is the worst value: it counts as lower
  than every number in later cutoffs (Ray's ``nanpercentile`` ignores NaNs)
  and a NaN trial is cut whenever the rung has a cutoff (Ray lets it continue).
* **Arrival order**: the controller reports a whole round at once; workers are
  taken in id order, each seeing the records of those before it.
* **Several rungs in one round** (``eval_steps`` larger than a rung gap): the
  trial is recorded at each passed rung in turn, lowest first, with the same
  latest Q, until one cuts it (Ray records only the highest and the skipped
  lower ones on later results).
* **max_t**: rungs lie strictly below ``max_t``; a trial whose ``steps`` reach
  ``max_t`` completes (told to the sampler with its latest Q), as Ray stops it.
* **Brackets**: drawn per trial with a seeded rng, Ray's softmax over the
  brackets' rung counts (``p_s`` proportional to ``e**len(rungs_s)``); with one
  bracket nothing is drawn. Rung milestones are integers (ceil for a
  non-integer ``reduction_factor``; duplicates dropped).
* **Failures**: a slot rolled back to an earlier checkpoint keeps its rung
  index, so a rung is never recorded twice; a dropped slot (``alive`` False)
  has its trial told to the sampler with its latest Q and is left alone.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from rlpop.decisions import Decision, RestartTrial, StopTrial
from rlpop.hparams import HParamSpace
from rlpop.strategies.common import check_int, check_space, check_state_kind, rng_from_state, rng_state
from rlpop.strategies.samplers import RandomSampler
from rlpop.view import MEMBER, PopulationView, WorkerSlot

_EPS = 1e-9


def _check_factor(value: Any, owner: str) -> int | float:
    """``reduction_factor`` as a number > 1 (an int when it is integral)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not value > 1:
        raise ValueError(f"{owner}: reduction_factor={value!r} must be a number > 1 "
                         "(e.g. 3: about a third of the trials continue past each rung)")
    return int(value) if float(value).is_integer() else float(value)


def _milestone(grace_period: int, reduction_factor: int | float, exponent: int) -> int:
    """``grace_period * reduction_factor**exponent`` as whole actor steps (exact for an integer factor)."""
    m = grace_period * reduction_factor ** exponent
    if isinstance(m, int):
        return m
    r = round(m)
    return int(r) if abs(m - r) <= _EPS * max(1.0, m) else math.ceil(m)


def rung_milestones(grace_period: int, reduction_factor: int | float, max_t: int, bracket: int = 0) -> list[int]:
    """Rungs of ``bracket``: ``grace_period * reduction_factor**(k + bracket)`` actor steps
    for k = 0, 1, ... while below ``max_t`` (ascending; empty when even k = 0 is not below it)."""
    owner = "rung_milestones"
    g = check_int(grace_period, "grace_period", owner, 1)
    rf = _check_factor(reduction_factor, owner)
    t = check_int(max_t, "max_t", owner, 1)
    s = check_int(bracket, "bracket", owner, 0)
    out: list[int] = []
    k = 0
    while True:
        m = _milestone(g, rf, k + s)
        if m >= t:
            return out
        if not out or m > out[-1]:
            out.append(m)
        k += 1


def rung_cutoff(values: Sequence[float], reduction_factor: int | float) -> float | None:
    """Ray's ``_Bracket.cutoff``: the ``(1 - 1/reduction_factor)`` quantile (linear interpolation) of the
    values recorded at a rung; ``None`` when there are none. NaN counts as -inf (the worst value)."""
    if not len(values):
        return None
    v = sorted(-math.inf if math.isnan(x) else float(x) for x in values)
    p = (1.0 - 1.0 / reduction_factor) * (len(v) - 1)
    if abs(p - round(p)) < _EPS:
        p = float(round(p))
    lo = math.floor(p)
    frac = p - lo
    if frac == 0.0 or lo + 1 >= len(v):
        return v[lo]
    a, b = v[lo], v[lo + 1]
    if a == -math.inf:  # between -inf and anything: the limit is -inf
        return -math.inf
    return a + (b - a) * frac


def bracket_probabilities(rung_counts: Sequence[int]) -> list[float]:
    """Ray's bracket draw: softmax over the brackets' rung counts."""
    sizes = np.asarray(rung_counts, dtype=float)
    p = np.exp(sizes - sizes.max())
    return [float(x) for x in p / p.sum()]


def _fmt(x: float) -> str:
    return "%.4g" % x


class ASHAStrategy:
    """Asynchronous successive halving over ``population`` slots (async HyperBand with ``brackets > 1``).

    ``sampler`` proposes the configurations (``ask``/``tell``/``get_state``/``set_state``, see
    :mod:`rlpop.strategies.samplers`); default ``RandomSampler(space, seed)``, whose first draws equal
    RandomSearch's with the same seed. The slots' first trials are asked for in slot order at construction.
    """

    KIND = "asha"

    def __init__(self, space: HParamSpace, *, population: int, max_t: int, grace_period: int,
                 reduction_factor: int | float = 3, brackets: int = 1, seed: int = 0, sampler: Any = None) -> None:
        owner = "ASHA"
        check_space(space, owner)
        self.space = space
        self.population = check_int(population, "population", owner, 1)
        self.grace_period = check_int(grace_period, "grace_period", owner, 1)
        self.max_t = check_int(max_t, "max_t", owner, 1)
        if self.max_t <= self.grace_period:
            raise ValueError(f"{owner}: max_t={self.max_t} must be > grace_period={self.grace_period} "
                             "(the first rung lies at grace_period actor steps, below a trial's length max_t)")
        self.reduction_factor = _check_factor(reduction_factor, owner)
        self.brackets = check_int(brackets, "brackets", owner, 1)
        most = len(rung_milestones(self.grace_period, self.reduction_factor, self.max_t, 0))
        if self.brackets > most:
            raise ValueError(f"{owner}: brackets={self.brackets} is too many: bracket {self.brackets - 1} would "
                             f"have no rung below max_t={self.max_t} (grace_period={self.grace_period}, "
                             f"reduction_factor={self.reduction_factor}); use brackets <= {most}")
        self.seed = check_int(seed, "seed", owner, 0)
        if sampler is None:
            sampler = RandomSampler(space, self.seed)
        missing = [m for m in ("ask", "tell", "get_state", "set_state") if not callable(getattr(sampler, m, None))]
        if missing:
            raise ValueError(f"{owner}: sampler={type(sampler).__name__} lacks {missing}; give an object with "
                             "ask(), tell(trial_id, value), get_state() and set_state(state), e.g. RandomSampler")
        self.sampler = sampler
        self.rungs: list[list[int]] = [rung_milestones(self.grace_period, self.reduction_factor, self.max_t, s)
                                       for s in range(self.brackets)]
        self.bracket_p = bracket_probabilities([len(r) for r in self.rungs])
        self._rng = np.random.default_rng([self.seed, 1])
        # records[s][k]: (trial id, value) in arrival order at rung k of bracket s
        self._records: list[list[list[tuple[int, float]]]] = [[[] for _ in r] for r in self.rungs]
        self._slots: dict[int, dict[str, Any]] = {}
        self._initial: list[dict[str, Any]] = []
        for i in range(self.population):
            got = self._ask()
            if got is None:
                raise ValueError(f"{owner}: the sampler proposed only {i} configurations; population="
                                 f"{self.population} needs one per slot to start")
            tid, hp = got
            self._slots[i] = {"trial": 0, "tid": tid, "bracket": self._draw_bracket(), "rung": 0, "open": True}
            self._initial.append(hp)

    # -- protocol ---------------------------------------------------------------------------------
    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(i, MEMBER, 1) for i in range(self.population)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self._initial[worker.id])

    def decide(self, view: PopulationView) -> list[Decision]:
        out: list[Decision] = []
        for wid in sorted(view.workers):
            w = view.workers[wid]
            slot = self._slots.get(wid)
            if w.role != MEMBER or slot is None or not slot["open"]:
                continue
            if not w.alive or w.stopped:  # dropped (or stopped by someone else): its trial ends here
                self._tell(slot["tid"], w.q)
                slot["open"] = False
                continue
            if w.trial < slot["trial"]:
                continue  # our RestartTrial is not carried out yet
            if w.trial > slot["trial"]:
                raise ValueError(f"ASHA.decide: worker {wid} is in trial {w.trial} but ASHA started only "
                                 f"{slot['trial']} restarts there; restarts must come from ASHA's RestartTrial")
            ended = self._advance(slot, int(w.steps), w.q)
            if ended is not None:
                out.append(self._next_trial(wid, slot, ended, w.q))
        return out

    # -- the rungs --------------------------------------------------------------------------------
    def _advance(self, slot: dict[str, Any], steps: int, q: float) -> str | None:
        """Record the trial at every rung its ``steps`` reached; why it ended, or None while it continues."""
        s = slot["bracket"]
        rungs = self.rungs[s]
        while slot["rung"] < len(rungs) and steps >= rungs[slot["rung"]]:
            k = slot["rung"]
            rec = self._records[s][k]
            cutoff = rung_cutoff([v for _, v in rec], self.reduction_factor)
            cut = cutoff is not None and (math.isnan(q) or q < cutoff)
            rec.append((slot["tid"], q))
            slot["rung"] = k + 1
            if cut:
                return (f"cut at rung {k} of bracket {s} ({rungs[k]} steps): Q={_fmt(q)} below the cutoff "
                        f"{_fmt(cutoff)} (the {1 - 1 / self.reduction_factor:.3g} quantile of the "
                        f"{len(rec) - 1} earlier)")
        if steps >= self.max_t:
            return f"completed: max_t={self.max_t} steps reached, Q={_fmt(q)}"
        return None

    def _next_trial(self, wid: int, slot: dict[str, Any], ended: str, q: float) -> Decision:
        old = slot["tid"]
        self._tell(old, q)
        got = self._ask()
        if got is None:
            slot["open"] = False
            return StopTrial(wid, f"trial #{old} {ended}; the sampler has nothing more to propose")
        tid, hp = got
        slot.update(trial=slot["trial"] + 1, tid=tid, bracket=self._draw_bracket(), rung=0)
        return RestartTrial(wid, hp, f"trial #{old} {ended}; new trial #{tid} in bracket {slot['bracket']}")

    def _draw_bracket(self) -> int:
        if self.brackets == 1:
            return 0
        return int(self._rng.choice(self.brackets, p=self.bracket_p))

    def _ask(self) -> tuple[int, dict[str, Any]] | None:
        try:
            got = self.sampler.ask()
        except StopIteration:
            return None
        if got is None:
            return None
        tid, hp = got
        return int(tid), dict(hp)

    def _tell(self, tid: int, q: float) -> None:
        self.sampler.tell(tid, float(q))

    # -- reporting --------------------------------------------------------------------------------
    def records(self, bracket: int = 0) -> list[list[tuple[int, float]]]:
        """(trial id, value) recorded at each rung of ``bracket``, in arrival order (a copy)."""
        return [list(r) for r in self._records[bracket]]

    def plan(self) -> str:
        """A few lines on the rungs and brackets (for ``--dry-run``)."""
        rf = self.reduction_factor
        name = "async HyperBand" if self.brackets > 1 else "ASHA"
        lines = [f"{name}: {self.population} slots, one trial each at a time; a cut or completed trial is "
                 f"replaced at once by a new one from {type(self.sampler).__name__}",
                 f"  trials end at max_t={self.max_t} actor steps; at each rung a trial continues only if its Q "
                 f"is >= the {1 - 1 / rf:.3g} quantile of the Q recorded there before it (top 1/{rf})"]
        for s, rungs in enumerate(self.rungs):
            p = f" (p={self.bracket_p[s]:.2f})" if self.brackets > 1 else ""
            lines.append(f"  bracket {s}{p}: rungs at " + ", ".join(str(m) for m in rungs) + " steps")
        return "\n".join(lines)

    # -- state ------------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"population": self.population, "max_t": self.max_t, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "brackets": self.brackets}

    def replacement(self, view: PopulationView, worker: int) -> None:
        """A diverged worker copies no peer here: the controller rebuilds it from its last checkpoint."""
        return None

    def get_state(self) -> dict[str, Any]:
        slots = {}
        for i, sl in sorted(self._slots.items()):
            rungs = self.rungs[sl["bracket"]]
            nxt = rungs[sl["rung"]] if sl["rung"] < len(rungs) else self.max_t
            slots[str(i)] = {**sl, "next_milestone": nxt}
        return {"strategy": self.KIND, "config": self._config(), "rng": rng_state(self._rng), "slots": slots,
                "records": [[[[t, None if math.isnan(v) else v] for t, v in rung] for rung in b]
                            for b in self._records],
                "sampler": self.sampler.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        check_state_kind(state, self.KIND, "ASHA")
        for key, mine in self._config().items():
            theirs = state["config"].get(key)
            if theirs != mine:
                raise ValueError(f"ASHA.set_state: {key}={mine!r} but the saved run used {key}={theirs!r}; "
                                 "resume with the settings the run was started with")
        self._rng = rng_from_state(state["rng"])
        self._slots = {int(i): {"trial": int(sl["trial"]), "tid": int(sl["tid"]),
                                "bracket": int(sl["bracket"]), "rung": int(sl["rung"]), "open": bool(sl["open"])}
                       for i, sl in state["slots"].items()}
        self._records = [[[(int(t), math.nan if v is None else float(v)) for t, v in rung] for rung in b]
                         for b in state["records"]]
        self.sampler.set_state(state["sampler"])
