"""FIRE PBT on scripted curves (no RL, no learners).

Most tests replace the curve math (``rlpop.curves.compare`` / ``best_score_diff``
/ ``smooth``) with scripted fakes so each rule is checked in isolation; the
``real curves`` tests use the real GP smoothing and comparisons.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pytest

from rlpop import curves
from rlpop.curves import Comparison
from rlpop.decisions import AssignEvaluator, EvaluatorSuccess, Exploit, Explore, StopEvaluator
from rlpop.hparams import HParamSpace, LogUniform
from rlpop.strategies import FIREStrategy, parent_fitness
from rlpop.view import EVALUATOR, MEMBER, PopulationView, WorkerView

READY, MAX_EVAL, EVAL = 1000, 3000, 250
REAL_COMPARE = curves.compare


def space() -> HParamSpace:
    return HParamSpace({"lr": LogUniform(1e-5, 1e-3), "eps": LogUniform(5e-3, 2e-2, factors=(0.8, 0.95, 1.05, 1.2))})


def fire(**kw) -> FIREStrategy:
    args = dict(subpop_size=(4, 4), evaluators=2, ready_steps=READY, max_eval_steps=MAX_EVAL, seed=0)
    args.update(kw)
    return FIREStrategy(space(), **args)


class Sim:
    """A minimal controller: every round each live worker trains ``EVAL`` steps and
    appends one (step, Q) point; decisions are applied in order, as the
    controller does (curves reset on copies)."""

    def __init__(self, strategy: FIREStrategy, q: Callable[["Sim", int], float]) -> None:
        self.s, self.q = strategy, q
        self.slots = {w.id: w for w in strategy.layout()}
        self.hp = {i: strategy.initial_hparams(w) for i, w in self.slots.items()}
        self.steps = dict.fromkeys(self.slots, 0)
        self.xs: dict[int, list[float]] = {i: [] for i in self.slots}
        self.ys: dict[int, list[float]] = {i: [] for i in self.slots}
        self.has_state = dict.fromkeys(self.slots, False)
        self.alive = dict.fromkeys(self.slots, True)
        self.round = 0

    def view(self) -> PopulationView:
        return PopulationView({i: WorkerView(
            id=i, role=w.role, subpop=w.subpop, steps=self.steps[i], hparams=dict(self.hp[i]),
            curve_steps=np.array(self.xs[i], dtype=float), curve_q=np.array(self.ys[i], dtype=float),
            has_state=self.has_state[i], alive=self.alive[i]) for i, w in self.slots.items()})

    def train(self) -> None:
        self.round += 1
        for i in self.slots:
            if self.alive[i]:
                self.steps[i] += EVAL
                self.xs[i].append(float(self.steps[i]))
                self.ys[i].append(float(self.q(self, i)))
                self.has_state[i] = True

    def reset(self, i: int) -> None:
        self.xs[i], self.ys[i] = [], []

    def apply(self, ds) -> None:
        for d in ds:
            if isinstance(d, Exploit):
                self.hp[d.dst] = dict(self.hp[d.src])
                self.reset(d.dst)
            elif isinstance(d, Explore):
                self.hp[d.dst] = dict(d.hparams)
            elif isinstance(d, AssignEvaluator):
                self.hp[d.evaluator] = dict(self.hp[d.child])
                self.reset(d.evaluator)
            elif isinstance(d, EvaluatorSuccess):
                self.reset(d.child)

    def step(self) -> list:
        self.train()
        ds = self.s.decide(self.view())
        self.apply(ds)
        return ds


def by_id(sim: Sim, i: int) -> float:
    """Q = worker id + a little growth: higher ids are fitter (P1: 3 is the best)."""
    return i + 0.01 * len(sim.ys[i])


def calm(sim: Sim, i: int) -> float:
    """Members as ``by_id``; every evaluator scores the same, so no parent
    sub-population evolves (P2 fitness is 0 for all) and only P1 does."""
    return 0.0 if sim.slots[i].role == EVALUATOR else by_id(sim, i)


def kinds(ds) -> list[str]:
    return [d.kind for d in ds]


def ev(ds) -> list:
    """The evaluator decisions (assign, success, stop) of a batch."""
    return [d for d in ds if isinstance(d, (AssignEvaluator, EvaluatorSuccess, StopEvaluator))]


def neutral(*a, **k) -> Comparison:
    return Comparison(score_diff=0.0, p_value=0.5, overlap=True)


@pytest.fixture
def fake_curves(monkeypatch):
    """Identity smoothing, score_diff = difference of last points, neutral checks."""
    monkeypatch.setattr(curves, "smooth", lambda x, y: np.asarray(y, dtype=float))
    monkeypatch.setattr(curves, "best_score_diff",
                        lambda xe, ye, xk, yk, **k: float(np.asarray(ye)[-1] - np.asarray(yk)[-1]))
    monkeypatch.setattr(curves, "compare", neutral)
    return monkeypatch


# -- construction ---------------------------------------------------------------------------------

def test_layout_members_first_then_evaluators_and_default_evaluator_count():
    s = fire(subpop_size=(3, 3, 3), evaluators=4)
    lay = [(w.id, w.role, w.subpop) for w in s.layout()]
    assert lay == [(0, MEMBER, 1), (1, MEMBER, 1), (2, MEMBER, 1), (3, MEMBER, 2), (4, MEMBER, 2), (5, MEMBER, 2),
                   (6, MEMBER, 3), (7, MEMBER, 3), (8, MEMBER, 3), (9, EVALUATOR, None), (10, EVALUATOR, None),
                   (11, EVALUATOR, None), (12, EVALUATOR, None)]
    # the paper's rule: 3/4 of the parent members (RL: 18+18 -> 14; ImageNet 4x8 -> 18, 2x8 -> 6)
    assert FIREStrategy(space(), ready_steps=1, max_eval_steps=1).evaluators == 14
    assert FIREStrategy(space(), subpops=4, subpop_size=8, ready_steps=1, max_eval_steps=1).evaluators == 18
    assert len(FIREStrategy(space(), subpop_size=(8, 8), ready_steps=1, max_eval_steps=1).layout()) == 22
    assert FIREStrategy(space(), subpop_size=(8, 8), ready_steps=1, max_eval_steps=1,
                   min_steps_before_eval=[5]).min_steps_before_eval == {2: 5}
    assert fire(subpop_size=(2, 2, 2), min_steps_before_eval={3: 7}).min_steps_before_eval == {2: 0, 3: 7}


@pytest.mark.parametrize("kw, words", [
    (dict(subpop_size=()), ["empty"]),
    (dict(subpop_size=(0, 0)), ["empty"]),
    (dict(subpop_size=(18,)), ["at least 2", "PBT"]),
    (dict(subpop_size=(4, 1)), ["subpop_size[1]", ">= 2"]),
    (dict(quantile=0.0), ["quantile", "(0, 0.5]"]),
    (dict(quantile=0.75), ["quantile", "(0, 0.5]"]),
    (dict(evaluators=0), ["evaluators", ">= 1"]),
    (dict(p_stat=0.0), ["p_stat"]),
    (dict(max_eval_steps=0), ["max_eval_steps"]),
    (dict(ready_steps=0), ["ready_steps"]),
    (dict(min_steps_before_eval={1: 5}), ["min_steps_before_eval", "2..2"]),
    (dict(min_steps_before_eval=[1, 2, 3]), ["min_steps_before_eval", "one per parent"]),
    (dict(min_steps_before_eval=-1), ["min_steps_before_eval", ">= 0"]),
    (dict(subpops=3), ["subpops=3", "subpop_size lists 2 sizes"]),
    (dict(subpop_size=None, subpops=2), ["subpops and subpop_size"]),
])
def test_bad_inputs_name_the_field(kw, words):
    with pytest.raises(ValueError) as e:
        fire(**kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_parent_fitness_is_the_sum_over_other_members_of_phi():
    table = {(10, 11): 1.0, (10, 12): 2.0, (11, 10): -1.0, (11, 12): 0.5, (12, 10): -2.0, (12, 11): -0.5}
    fit = parent_fitness({4: 10, 5: 11, 6: 12}, lambda a, b: table[(a, b)])
    assert fit == {4: 3.0, 5: -0.5, 6: -2.5}
    assert parent_fitness({4: 10}, lambda a, b: 1 / 0) == {4: 0.0}


# -- assignment -----------------------------------------------------------------------------------

def test_assignment_least_recently_evaluated_first_and_child_is_best_of_p1(fake_curves):
    s = fire(evaluators=2)
    sim = Sim(s, calm)
    ds = sim.step()  # steps 250: no PBT event yet; evaluators 8, 9 take members 4, 5 (ties -> id)
    assert ds == [AssignEvaluator(8, 4, 3), AssignEvaluator(9, 5, 3)]  # child: best Q in P1 is id 3
    fake_curves.setattr(curves, "compare", lambda *a, **k: Comparison(0.0, 0.9, True))
    for _ in range(3):
        assert ev(sim.step()) == []
    # steps 1250, T = 1000 for both: p=0.9 > threshold 0.677, both stop and move on to the members
    # that trained longest since evaluated: 6 and 7 (4 and 5 were evaluated just now)
    ds = ev(sim.step())
    assert kinds(ds) == ["stop", "stop", "assign", "assign"]
    assert [(d.evaluator, d.parent, d.child) for d in ds[2:]] == [(8, 6, 3), (9, 7, 3)]
    assert s.assignments[8].start_steps == 1250


def test_assignment_prefers_longest_since_evaluated(fake_curves):
    s = fire(subpop_size=(2, 4), evaluators=1)
    sim = Sim(s, by_id)
    st = s.get_state()
    st["last_evaluated_or_lost"] = {"2": 200, "3": 0, "4": 100, "5": 0}
    s.set_state(st)
    ds = sim.step()
    assert ds == [AssignEvaluator(6, 3, 1)]  # 3 and 5 tie at 250 steps since: lower id


def test_min_steps_before_eval_and_never_two_evaluators_on_one_member(fake_curves):
    s = fire(subpop_size=(2, 2), evaluators=3, min_steps_before_eval={2: 500})
    sim = Sim(s, by_id)
    assert sim.step() == []  # 250 < 500
    ds = sim.step()
    assert ds == [AssignEvaluator(4, 2, 1), AssignEvaluator(5, 3, 1)]  # evaluator 6 stays free
    assert sim.step() == [] and set(s.assignments) == {4, 5}


def test_members_without_state_are_never_parents_or_children(fake_curves):
    s = fire()
    sim = Sim(s, by_id)
    sim.train()
    sim.has_state[3] = sim.has_state[4] = False
    ds = s.decide(sim.view())
    assert ds == [AssignEvaluator(8, 5, 2), AssignEvaluator(9, 6, 2)]


def test_child_of_a_higher_parent_is_the_best_fire_fitness_member(fake_curves):
    # P1: 0-1, P2: 2-3, P3: 4-5, evaluators 6-9
    s = fire(subpop_size=(2, 2, 2), evaluators=4)
    sim = Sim(s, by_id)
    sim.train()
    ds = s.decide(sim.view())
    # P2 has no fitness yet (no evaluator curves): fallback to latest Q -> 3
    assert ds == [AssignEvaluator(6, 2, 1), AssignEvaluator(7, 3, 1), AssignEvaluator(8, 4, 3),
                  AssignEvaluator(9, 5, 3)]
    sim.apply(ds)
    # evaluator 6 (parent 2) climbs faster than evaluator 7 (parent 3): 2 is P2's best now
    sim.q = lambda sim_, i: {6: 10.0, 7: 0.0}.get(i, by_id(sim_, i))
    sim.train()
    sim.train()
    st = s.get_state()
    s.set_state({**st, "assignments": {k: v for k, v in st["assignments"].items() if k in ("6", "7")}})
    ds = s.decide(sim.view())
    assert ds == [AssignEvaluator(8, 4, 2), AssignEvaluator(9, 5, 2)]


# -- within-sub-population PBT ---------------------------------------------------------------------

def test_parent_fitness_from_evaluator_curves_drives_truncation(fake_curves):
    calls = []

    def diff(xe, ye, xk, yk, **k):
        calls.append((ye[-1], yk[-1]))
        return float(ye[-1] - yk[-1])

    fake_curves.setattr(curves, "best_score_diff", diff)
    s = fire(subpop_size=(4, 5), evaluators=4)  # P2 = 4..8; evaluators 9..12
    sim = Sim(s, lambda sim_, i: {9: 3.0, 10: 1.0, 11: 2.0, 12: 4.0}.get(i, float(i)))
    first = sim.step()
    assert [(d.evaluator, d.parent) for d in first] == [(9, 4), (10, 5), (11, 6), (12, 7)]
    ds = []
    for _ in range(3):
        ds = sim.step()
    # steps 1000: PBT event. P1 (ids 0-3, Q = id): 0 copies 3. P2: Phi = {4, 5, 6, 7} (8 has no
    # evaluator: exempt); fitness = sum over the others of (last eval Q - their last eval Q)
    exploits = [(d.src, d.dst) for d in ds if isinstance(d, Exploit)]
    assert exploits == [(3, 0), (7, 5)]  # 4 y_j - sum: 4 -> 2, 5 -> -6, 6 -> -2, 7 -> 6
    assert len(calls) == 6  # 4 * 3 / 2 unordered pairs, each computed once (antisymmetry gives the other order)
    # 5 lost: its evaluator (10) stops, 0 lost: evaluators targeting child 3 keep going
    stops = [d for d in ds if isinstance(d, StopEvaluator)]
    assert stops == [StopEvaluator(10, "parent lost evolution")]
    # evaluator 10 is free again and takes the only unassigned member, 8 (5 just lost)
    assert ds[-1] == AssignEvaluator(10, 8, 3)


def test_members_without_enough_evaluator_curve_are_exempt(fake_curves):
    s = fire(subpop_size=(4, 4), evaluators=2, min_curve_points=2)
    sim = Sim(s, lambda sim_, i: -100.0 if i in (6, 7) else float(i))  # unassigned 6, 7 are terrible
    sim.step()  # 8 -> 4, 9 -> 5
    for _ in range(3):
        ds = sim.step()
    dsts = {d.dst for d in ds if isinstance(d, Exploit)}
    srcs = {d.src for d in ds if isinstance(d, Exploit)}
    assert 6 not in dsts | srcs and 7 not in dsts | srcs
    assert (5, 4) in {(d.src, d.dst) for d in ds if isinstance(d, Exploit)}  # eval of 5 scores 9 > 8

    # evaluator curves shorter than min_curve_points: nobody in P2 has a fitness yet
    s = fire(subpop_size=(4, 4), evaluators=2, min_curve_points=4)
    sim = Sim(s, by_id)
    for _ in range(4):
        ds = sim.step()
    assert [(d.src, d.dst) for d in ds if isinstance(d, Exploit)] == [(3, 0)]  # P1 only


def test_pbt_waits_for_all_members_and_explores_source_hparams(fake_curves):
    s = fire()
    sim = Sim(s, by_id)
    for _ in range(3):
        sim.step()
    sim.train()
    sim.steps[2] -= 100  # one member lags: no event
    ds = s.decide(sim.view())
    assert not any(isinstance(d, Exploit) for d in ds)
    sim.steps[2] += 100
    ds = s.decide(sim.view())
    ex = [d for d in ds if isinstance(d, (Exploit, Explore))]
    assert [d.kind for d in ex][:2] == ["exploit", "explore"]
    assert ex[0].src == 3 and ex[0].dst == 0
    ratio = ex[1].hparams["lr"] / sim.hp[3]["lr"]
    assert min(abs(ratio - f) for f in (0.5, 0.8, 1.25, 2.0)) < 1e-9


def test_asynchronous_mode_exploits_members_as_they_become_ready(fake_curves):
    s = fire(synchronous=False)
    sim = Sim(s, calm)
    for _ in range(3):
        sim.step()
    sim.train()
    sim.steps[0] -= 100  # P1's worst member is not ready yet: the others act without it
    ds = s.decide(sim.view())
    assert [d for d in ds if isinstance(d, Exploit)] == []
    sim.apply(ds)
    ds = sim.step()  # 0 is ready now (1150 steps), and still the worst
    assert [(d.src, d.dst) for d in ds if isinstance(d, Exploit)] == [(3, 0)]


# -- evaluator checks -----------------------------------------------------------------------------

def _assigned(q=calm, **kw) -> tuple[FIREStrategy, Sim]:
    s = fire(**kw)
    sim = Sim(s, q)
    assert kinds(sim.step()) == ["assign"] * s.evaluators
    return s, sim


def test_success_copies_into_the_right_child_then_the_evaluator_moves_on(fake_curves):
    s, sim = _assigned()  # 8 -> (parent 4, child 3), 9 -> (parent 5, child 3)
    seen = []

    def cmp(xe, ye, xk, yk, **k):
        seen.append((len(ye), len(yk)))
        return Comparison(0.5, 0.001, True) if len(seen) == 1 else Comparison(0.0, 0.5, True)

    fake_curves.setattr(curves, "compare", cmp)
    for _ in range(3):
        assert ev(sim.step()) == []  # T = 250, 500, 750: not checked yet
    ds = ev(sim.step())  # T = 1000 (steps 1250): checked every READY of own training
    assert ds[:2] == [EvaluatorSuccess(8, 3, 0.001, 0.5), StopEvaluator(8, "success")]
    # 9 targets the same child: it is not checked against the child's old curve now
    assert seen == [(4, 5)]
    assert ds[2] == AssignEvaluator(8, 6, 3)
    assert set(s.assignments) == {8, 9} and s.assignments[9].child == 3  # 9 keeps going
    ds = ev(sim.step())  # 9 is checked next decide, against the child's new 1-point curve: skipped (< 2)
    assert seen == [(4, 5)] and ds == []
    sim.step()
    assert seen == [(4, 5), (6, 2)]


def test_no_success_without_a_positive_score_diff_or_a_small_p(fake_curves):
    for cmp in (Comparison(-0.5, 0.001, True), Comparison(0.5, 0.02, True), Comparison(0.5, None, False)):
        fake_curves.setattr(curves, "compare", lambda *a, c=cmp, **k: c)
        s, sim = _assigned(evaluators=1, subpop_size=(2, 2))
        out = [ev(sim.step()) for _ in range(8)]  # checks at T=1000, 2000: neither success nor stop
        assert out == [[]] * 8 and set(s.assignments) == {4}


def test_stop_when_no_overlap_past_max_eval_steps(fake_curves):
    fake_curves.setattr(curves, "compare", lambda *a, **k: Comparison(0.0, None, False))
    s, sim = _assigned(evaluators=1, subpop_size=(2, 2))  # P1 0-1, P2 2-3, evaluator 4 -> (2, child 1)
    out = [ev(sim.step()) for _ in range(16)]
    # assigned at round 1; checks at T=1000, 2000, 3000 (not > 3000), 4000 (round 17) -> stop
    assert out[:15] == [[]] * 15
    assert out[15] == [StopEvaluator(4, "no overlap after T=4000 > max_eval_steps=3000"),
                       AssignEvaluator(4, 3, 1)]


def test_stop_when_p_above_the_shrinking_threshold(fake_curves):
    fake_curves.setattr(curves, "compare", lambda *a, **k: Comparison(-0.1, 0.2, True))
    s, sim = _assigned(evaluators=1, subpop_size=(2, 2))
    out = [ev(sim.step()) for _ in range(12)]
    # threshold = 0.01 + max(0, 1 - T/3000): T=1000 -> 0.677, T=2000 -> 0.343, T=3000 -> 0.01 < 0.2
    assert out[:11] == [[]] * 11
    assert out[11] == [StopEvaluator(4, "p=0.2 > threshold 0.01 at T=3000"),
                       AssignEvaluator(4, 3, 1)]  # moves on to the other parent member


def test_release_on_parent_loss_and_on_child_loss(fake_curves):
    # P1: 0-3, P2: 4-7; evaluators 8 -> parent 4, 9 -> parent 5, both target child 3 (best of P1)
    s, sim = _assigned(evaluators=2)
    sim.q = lambda sim_, i: {8: 1.0, 9: 5.0}.get(i, float(i))
    for _ in range(2):
        sim.step()
    # at the event P1's worst (0) copies 3: not the child; P2: Phi={4, 5}: 4 loses to 5
    ds = sim.step()
    assert [(d.src, d.dst) for d in ds if isinstance(d, Exploit)] == [(3, 0), (5, 4)]
    assert StopEvaluator(8, "parent lost evolution") in ds
    assert all(not (isinstance(d, StopEvaluator) and d.evaluator == 9) for d in ds)
    # evaluator 8 moves to 6 (4 just lost: its "last evaluated or lost" time restarted)
    assert ds[-1] == AssignEvaluator(8, 6, 3)

    # child loss: make 3 the worst of P1 at the next event
    sim.q = lambda sim_, i: {3: -1.0, 8: 1.0, 9: 5.0}.get(i, float(i))
    out = [sim.step() for _ in range(4)]
    ds = out[-1]
    assert (2, 3) in [(d.src, d.dst) for d in ds if isinstance(d, Exploit)]
    stops = [d for d in ds if isinstance(d, StopEvaluator)]
    assert StopEvaluator(9, "child lost evolution") in stops
    new = [d for d in ds if isinstance(d, AssignEvaluator)]
    assert all(d.child != 3 for d in new)  # the loser is never picked as a child


def test_success_into_a_parent_member_stops_the_evaluator_evaluating_it(fake_curves):
    # P1: 0-1, P2: 2-3, P3: 4-5; evaluators 6..8
    s = fire(subpop_size=(2, 2, 2), evaluators=3)
    sim = Sim(s, by_id)
    assert sim.step() == [AssignEvaluator(6, 2, 1), AssignEvaluator(7, 3, 1), AssignEvaluator(8, 4, 3)]
    fake_curves.setattr(curves, "compare", lambda xe, ye, xk, yk, **k:
                        Comparison(1.0, 0.001, True) if ye[-1] == 8 + 0.01 * (len(ye) - 1) else neutral())
    sim.q = lambda sim_, i: float(i) + 0.01 * len(sim_.ys[i])
    for _ in range(4):
        ds = sim.step()
    # round 5, T = 1000: evaluator 8 (parent 4, child 3) succeeds: 3 takes new weights, so 7 (evaluating 3) stops
    assert EvaluatorSuccess(8, 3, 0.001, 1.0) in ds
    assert StopEvaluator(7, "parent took new weights (evaluator success)") in ds


def test_dead_workers_release_their_evaluators(fake_curves):
    s, sim = _assigned()
    sim.alive[4] = False
    sim.alive[9] = False
    sim.train()
    ds = s.decide(sim.view())
    # 8's parent died: it stops and takes 5, whose evaluator (9) died and is forgotten
    assert ds == [StopEvaluator(8, "parent gone"), AssignEvaluator(8, 5, 3)]
    assert set(s.assignments) == {8}


# -- determinism and resume -----------------------------------------------------------------------

def _noisy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda sim, i: float(np.log1p(len(sim.ys[i]) * (1 + i % 3)) + 0.3 * rng.normal())


def test_deterministic_per_seed_and_state_round_trip(fake_curves):
    fake_curves.setattr(curves, "compare", REAL_COMPARE)  # real comparisons on unsmoothed curves (fast)
    runs = []
    for seed in (3, 3, 4):
        sim = Sim(fire(subpop_size=(4, 4), evaluators=3, seed=seed), _noisy(0))
        runs.append([sim.step() for _ in range(24)])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert sum(len(ds) for ds in runs[0]) > 10

    sim = Sim(fire(subpop_size=(4, 4), evaluators=3, seed=3), _noisy(0))
    head = [sim.step() for _ in range(10)]
    state = json.loads(json.dumps(sim.s.get_state()))
    resumed = fire(subpop_size=(4, 4), evaluators=3, seed=99)
    resumed.set_state(state)
    sim.s = resumed
    tail = [sim.step() for _ in range(14)]
    assert head + tail == runs[0]
    with pytest.raises(ValueError, match="strategy"):
        resumed.set_state({"strategy": "pbt"})


# -- real curves ----------------------------------------------------------------------------------

def test_real_curves_parent_fitness_ranks_the_faster_improver_first():
    s = fire(subpop_size=(4, 4), evaluators=3)
    rng = np.random.default_rng(0)
    x = np.arange(1, 13) * 250.0
    slopes = {8: 0.05, 9: 0.2, 10: 0.1}  # evaluators of members 4, 5, 6
    ys = {e: 1.0 + k * np.arange(12) + 0.01 * rng.normal(size=12) for e, k in slopes.items()}
    ws = {}
    for i in range(11):
        role, subpop = (MEMBER, 1 if i < 4 else 2) if i < 8 else (EVALUATOR, None)
        cy = ys.get(i, np.full(12, float(i)))
        ws[i] = WorkerView(i, role, subpop, 3000, {"lr": 1e-4, "eps": 0.01}, x, cy, True)
    st = s.get_state()
    st["assignments"] = {"8": dict(parent=4, child=3, start_steps=0, last_check=3000),
                         "9": dict(parent=5, child=3, start_steps=0, last_check=3000),
                         "10": dict(parent=6, child=3, start_steps=0, last_check=3000)}
    s.set_state(st)
    # Phi of sub-population 2: members 4, 5, 6 through their evaluators 8, 9, 10 (7 has none)
    fit = parent_fitness({4: 8, 5: 9, 6: 10},
                         lambda e, k: curves.best_score_diff(x, ws[e].curve_q, x, ws[k].curve_q))
    assert set(fit) == {4, 5, 6}
    assert fit[5] > fit[6] > fit[4]
    # antisymmetric pairwise scores sum to zero over Phi
    assert sum(fit.values()) == pytest.approx(0.0, abs=1e-9)
    # the strategy ranks sub-population 2 by those evaluator curves, not by the members' own Q
    # (which would put 6 first): the worst of Phi, 4, copies the best, 5; in P1 (greedy) 0 copies 3
    ds = s.decide(PopulationView(ws))
    assert [(d.src, d.dst) for d in ds if isinstance(d, Exploit)] == [(3, 0), (5, 4)]


def test_real_curves_success_when_the_evaluator_climbs_faster_than_its_child():
    # P1 0-1 (1 is poor, so 0 stays the best and is never exploited), P2 2-3, evaluator 4
    s = fire(subpop_size=(2, 2), evaluators=1)
    sim = Sim(s, lambda sim_, i: -10.0 if i == 1 else 0.0)
    assert sim.step() == [AssignEvaluator(4, 2, 0)]
    sim.reset(0)  # both curves start now, at the same level
    # the child improves slowly, the evaluator quickly
    sim.q = lambda sim_, i: -10.0 if i == 1 else (0.3 if i == 4 else 0.05) * len(sim_.ys[i])
    out = [ev(sim.step()) for _ in range(12)]
    # checks at T=1000 (4 points), T=2000 (8 points: p >= 0.035 > 0.01, below the stop threshold
    # 0.343), T=3000 (12 points): success. The GP fits place the child's overlap at index 0 or 1
    # (their starts differ by rounding), so n = 12 (k = 11) or n = 11 (k = 10).
    assert out[:11] == [[]] * 11
    success, stop, reassign = out[11]
    assert (success.evaluator, success.child) == (4, 0)
    # (p, diff): n = 12 -> (13/4096, 3.3 - 0.55); n = 11 -> (12/2048, 3.0 - 0.55)
    assert (success.p_value, success.score_diff) in [(pytest.approx(13 / 4096), pytest.approx(2.75)),
                                                     (pytest.approx(12 / 2048), pytest.approx(2.45))]
    assert stop == StopEvaluator(4, "success") and reassign == AssignEvaluator(4, 3, 0)


# -- real GP fits: one per curve and decide, deterministic, exact resume -------------------------

def test_real_fits_once_per_curve_per_decide_deterministic_and_resumed_exactly(monkeypatch):
    fitted = []
    real = curves.smooth
    monkeypatch.setattr(curves, "smooth", lambda x, y: fitted[-1].append(tuple(y)) or real(x, y))
    runs = []
    for _ in range(2):
        sim = Sim(fire(subpop_size=(4, 4), evaluators=3, seed=3), _noisy(0))
        run = []
        for _ in range(24):
            fitted.append([])
            run.append(sim.step())
            assert len(fitted[-1]) == len(set(fitted[-1]))  # no curve fitted twice in one decide
        runs.append(run)
    assert runs[0] == runs[1]
    assert sum(map(len, fitted)) > 20 and {"exploit", "assign", "stop"} <= {d.kind for ds in runs[0] for d in ds}
    # a strategy resumed from its JSON state continues exactly, real GP comparisons included
    sim = Sim(fire(subpop_size=(4, 4), evaluators=3, seed=3), _noisy(0))
    head = [sim.step() for _ in range(10)]
    resumed = fire(subpop_size=(4, 4), evaluators=3, seed=99)
    resumed.set_state(json.loads(json.dumps(sim.s.get_state())))
    sim.s = resumed
    assert head + [sim.step() for _ in range(14)] == runs[0]
