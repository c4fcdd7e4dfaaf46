"""ASHA / async HyperBand on hand-built population views (no RL, no learners, no controller)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlpop.decisions import RestartTrial, StopTrial, to_record
from rlpop.hparams import Choice, HParamSpace, LogUniform
from rlpop.strategies import RandomSearchStrategy
from rlpop.strategies.asha import ASHAStrategy, bracket_probabilities, rung_cutoff, rung_milestones
from rlpop.strategies.samplers import RandomSampler
from rlpop.view import MEMBER, PopulationView, WorkerSlot, WorkerView

NAN = float("nan")


def space() -> HParamSpace:
    return HParamSpace({"lr": LogUniform(1e-5, 1e-3), "batch": Choice([32, 64, 128])})


def wv(wid: int, steps: int, q: float | None, trial: int = 0, alive: bool = True, stopped: bool = False,
       hparams: dict | None = None) -> WorkerView:
    qs = [] if q is None else [q]
    return WorkerView(id=wid, role=MEMBER, subpop=1, steps=steps, hparams=hparams or {},
                      curve_steps=np.array([steps][:len(qs)], dtype=float), curve_q=np.array(qs, dtype=float),
                      has_state=q is not None, alive=alive, trial=trial, stopped=stopped)


def view(*workers: WorkerView) -> PopulationView:
    return PopulationView({w.id: w for w in workers})


def one_round(values, steps, trials=None) -> PopulationView:
    """Every slot i at ``steps`` with latest Q ``values[i]`` (arrival order = id order)."""
    trials = trials or [0] * len(values)
    return view(*(wv(i, steps, q, trials[i]) for i, q in enumerate(values)))


def cut_ids(decisions) -> list[int]:
    return [d.worker for d in decisions if isinstance(d, RestartTrial) and "cut" in d.reason]


class LoggingSampler(RandomSampler):
    """RandomSampler that remembers what it was told."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.told: list[tuple[int, float]] = []

    def tell(self, trial_id, value):
        super().tell(trial_id, value)
        self.told.append((trial_id, value))


class ListSampler:
    """Proposes a fixed list of configurations, then nothing."""

    def __init__(self, configs):
        self.configs, self.next = list(configs), 0

    def ask(self):
        if self.next >= len(self.configs):
            return None
        self.next += 1
        return self.next - 1, dict(self.configs[self.next - 1])

    def tell(self, trial_id, value):
        pass

    def get_state(self):
        return {"next": self.next}

    def set_state(self, state):
        self.next = state["next"]


# -- rungs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("grace, rf, max_t, bracket, expected", [
    (1, 3, 100, 0, [1, 3, 9, 27, 81]),
    (1, 3, 81, 0, [1, 3, 9, 27]),          # a milestone equal to max_t is no rung
    (1, 3, 82, 0, [1, 3, 9, 27, 81]),
    (1, 3, 100, 1, [3, 9, 27, 81]),
    (1, 3, 100, 4, [81]),
    (1, 3, 100, 5, []),
    (10, 2, 100, 0, [10, 20, 40, 80]),
    (10, 2, 100, 2, [40, 80]),
    (1000, 4, 64_000, 0, [1000, 4000, 16_000]),
    (1000, 4, 64_001, 1, [4000, 16_000, 64_000]),
    (2, 3.0, 54, 0, [2, 6, 18]),           # an integral float factor is exact
    (5, 2.5, 100, 0, [5, 13, 32, 79]),     # 12.5, 31.25, 78.125: ceil to whole steps
    (1, 1.5, 20, 0, [1, 2, 3, 4, 6, 8, 12, 18]),
    (1, 1.1, 3, 0, [1, 2]),                # 1.1 and 1.21 both round up to 2: one rung
])
def test_rung_milestones(grace, rf, max_t, bracket, expected):
    assert rung_milestones(grace, rf, max_t, bracket) == expected


def test_strategy_rungs_are_rung_milestones_per_bracket():
    a = ASHAStrategy(space(), population=4, max_t=10_000, grace_period=10, reduction_factor=4, brackets=3)
    assert a.rungs == [[10, 40, 160, 640, 2560], [40, 160, 640, 2560], [160, 640, 2560]]
    plan = a.plan()
    assert "async HyperBand" in plan and "10, 40, 160, 640, 2560" in plan and "160, 640, 2560" in plan
    assert "ASHA" in ASHAStrategy(space(), population=2, max_t=100, grace_period=10).plan()


def test_rung_cutoff_is_rays_percentile():
    rng = np.random.default_rng(5)
    for rf in (2, 3, 4, 2.5):
        for n in range(1, 12):
            vals = list(rng.normal(size=n))
            assert rung_cutoff(vals, rf) == pytest.approx(np.percentile(vals, (1 - 1 / rf) * 100), abs=1e-12)
    assert rung_cutoff([], 3) is None
    assert rung_cutoff([1.0, 2.0, 3.0, 4.0], 3) == 3.0   # position 2 exactly (numpy: 3.0000000000000004)


# -- promotion / cut counts ----------------------------------------------------------------------

def test_nine_trials_at_rung0_rf3_by_hand():
    # Arrival order = id order. Cutoff = 2/3 quantile of the values recorded before:
    # 5: none -> keep | 3: [5] -> 5, cut | 8: [3,5] -> 4.33 keep | 1: [3,5,8] -> 6 cut | 9: [1,3,5,8] -> 5 keep
    # 4: [1,3,5,8,9] -> 7 cut | 7: [1,3,4,5,8,9] -> 6 keep | 2: ... cut | 6: [1,2,3,4,5,7,8,9] -> 6.33 cut
    values = [5, 3, 8, 1, 9, 4, 7, 2, 6]
    a = ASHAStrategy(space(), population=9, max_t=1000, grace_period=10, reduction_factor=3)
    assert a.decide(one_round(values, 5)) == []          # below the first rung: nothing
    d = a.decide(one_round(values, 10))
    assert cut_ids(d) == [1, 3, 5, 7, 8] == [d_.worker for d_ in d]
    assert all(isinstance(x, RestartTrial) and x.hparams for x in d)
    assert [v for _, v in a.records()[0]] == values      # every arrival recorded, in order
    assert a.records()[1] == []
    # the survivors pass rung 0 only once: the next round records nothing more there
    restarted = (1, 3, 5, 7, 8)
    nxt = view(*(wv(i, 5, 0.0, trial=1) if i in restarted else wv(i, 20, v + 1) for i, v in enumerate(values)))
    assert a.decide(nxt) == []
    assert len(a.records()[0]) == 9


@pytest.mark.parametrize("values, rf, kept", [
    (list(range(1, 10)), 3, list(range(9))),           # ascending: each is the best so far
    (list(range(9, 0, -1)), 3, [0]),                   # descending: only the first (no cutoff yet)
    ([4, 2, 6, 1, 5, 3], 2, [0, 2, 4]),                # rf=2: cutoff = median of the earlier ones
])
def test_cuts_depend_on_arrival_order(values, rf, kept):
    a = ASHAStrategy(space(), population=len(values), max_t=1000, grace_period=10, reduction_factor=rf)
    d = a.decide(one_round(values, 10))
    assert sorted(set(range(len(values))) - set(cut_ids(d))) == kept


@pytest.mark.parametrize("population, rf", [(4, 2), (9, 3), (16, 4), (27, 3), (10, 2.5)])
def test_cuts_match_rays_rule(population, rf):
    """A trial is cut iff its Q < numpy's (1 - 1/rf) percentile of the Q recorded before it (Ray's on_result)."""
    values = list(np.random.default_rng(population).permutation(population) * 1.5 + 0.25)
    a = ASHAStrategy(space(), population=population, max_t=10_000, grace_period=100, reduction_factor=rf)
    expected = [i for i, v in enumerate(values) if i and v < np.percentile(values[:i], (1 - 1 / rf) * 100)]
    assert expected and cut_ids(a.decide(one_round(values, 100))) == expected


def test_rungs_cutoff_completion_and_tell():
    sampler = LoggingSampler(space(), seed=3)
    a = ASHAStrategy(space(), population=3, max_t=100, grace_period=10, reduction_factor=3, sampler=sampler)
    # round 1: only slot 0 reaches rung 0 (10 steps): first there, kept
    assert a.decide(view(wv(0, 10, 2.0), wv(1, 5, 0.0), wv(2, 5, 0.0))) == []
    # round 2: slot 1 reaches rung 0 with Q 1.0 < 2.0: cut, told, restarted as trial #3
    d = a.decide(view(wv(0, 20, 2.5), wv(1, 10, 1.0), wv(2, 5, 0.0)))
    assert len(d) == 1 and isinstance(d[0], RestartTrial) and d[0].worker == 1
    assert "trial #1 cut at rung 0" in d[0].reason and "new trial #3" in d[0].reason
    assert sampler.told == [(1, 1.0)]
    # round 3: slot 2 arrives with 3.0 >= cutoff (2/3 quantile of [2, 1] = 1.67): kept;
    # slot 1 (restarted, trial 1) is at 0 steps; slot 0 reaches rung 1 (30) first: kept
    d = a.decide(view(wv(0, 30, 2.7), wv(1, 0, None, trial=1), wv(2, 10, 3.0)))
    assert d == []
    assert [v for _, v in a.records()[0]] == [2.0, 1.0, 3.0] and a.records()[1] == [(0, 2.7)]
    # slot 2 at rung 1 with 2.0 < 2.7: cut
    d = a.decide(view(wv(0, 40, 2.8), wv(1, 5, 0.5, trial=1), wv(2, 30, 2.0)))
    assert cut_ids(d) == [2] and "rung 1" in d[0].reason
    # slot 0 passes rung 2 (90) alone, then completes at max_t
    assert a.decide(view(wv(0, 90, 4.0), wv(1, 6, 0.5, trial=1), wv(2, 0, None, trial=1))) == []
    d = a.decide(view(wv(0, 100, 4.5), wv(1, 7, 0.5, trial=1), wv(2, 1, 0.1, trial=1)))
    assert len(d) == 1 and d[0].worker == 0 and "completed" in d[0].reason
    assert sampler.told[-1] == (0, 4.5)
    st = a.get_state()["slots"]
    assert st["0"]["trial"] == 1 and st["0"]["rung"] == 0 and st["0"]["next_milestone"] == 10


def test_several_rungs_in_one_round_and_rollback():
    a = ASHAStrategy(space(), population=2, max_t=1000, grace_period=10, reduction_factor=3)
    # slot 0 jumps past rungs 10 and 30 at once: recorded at both (lowest first)
    assert a.decide(view(wv(0, 35, 1.0), wv(1, 0, None))) == []
    assert a.records()[0] == [(0, 1.0)] and a.records()[1] == [(0, 1.0)]
    # slot 1 jumps past 10 and 30 with a worse Q: cut at rung 0, never recorded at rung 1
    d = a.decide(view(wv(0, 40, 1.0), wv(1, 35, 0.5)))
    assert cut_ids(d) == [1] and "rung 0" in d[0].reason and len(a.records()[1]) == 1
    # a failure rolls slot 0 back to 20 steps: rungs 0 and 1 are not recorded again
    a.decide(view(wv(0, 20, NAN), wv(1, 0, None, trial=1)))
    a.decide(view(wv(0, 30, 0.1), wv(1, 0, None, trial=1)))
    assert len(a.records()[0]) == 2 and len(a.records()[1]) == 1


def test_jump_to_max_t_records_rungs_then_completes():
    a = ASHAStrategy(space(), population=1, max_t=100, grace_period=10, reduction_factor=3)
    d = a.decide(view(wv(0, 120, 1.0)))
    assert len(d) == 1 and "completed" in d[0].reason
    assert [len(r) for r in a.records()] == [1, 1, 1]


# -- brackets ------------------------------------------------------------------------------------

def test_bracket_layout_and_draw():
    a = ASHAStrategy(space(), population=3000, max_t=100, grace_period=1, reduction_factor=3, brackets=3, seed=1)
    assert a.rungs == [[1, 3, 9, 27, 81], [3, 9, 27, 81], [9, 27, 81]]
    p = bracket_probabilities([5, 4, 3])
    assert a.bracket_p == pytest.approx(p)
    e = np.exp([5.0, 4.0, 3.0])
    assert p == pytest.approx(list(e / e.sum()))        # Ray: softmax over the rung counts
    counts = np.bincount([s["bracket"] for s in a.get_state()["slots"].values()], minlength=3)
    assert counts / 3000 == pytest.approx(p, abs=0.03)
    # one bracket: everyone in bracket 0, the bracket rng is not used
    b = ASHAStrategy(space(), population=5, max_t=100, grace_period=1, brackets=1)
    assert {s["bracket"] for s in b.get_state()["slots"].values()} == {0}


def test_bracket_rungs_apply_per_bracket():
    a = ASHAStrategy(space(), population=40, max_t=100, grace_period=1, reduction_factor=3, brackets=2, seed=2)
    slots = a.get_state()["slots"]
    b0 = [int(i) for i, s in slots.items() if s["bracket"] == 0]
    b1 = [int(i) for i, s in slots.items() if s["bracket"] == 1]
    assert b0 and b1
    vals = list(range(40, 0, -1))                       # descending: all but the first arrival per rung are cut
    d = a.decide(view(*(wv(i, 1, vals[i]) for i in range(40))))
    assert cut_ids(d) == b0[1:]                          # bracket 1's first rung is at 3 steps
    assert a.records(1)[0] == []
    d = a.decide(view(*(wv(i, 3 if i in b1 else 0, vals[i], trial=0 if i in b1 or i == b0[0] else 1)
                        for i in range(40))))
    assert cut_ids(d) == b1[1:]
    assert [t for t, _ in a.records(1)[0]] == [slots[str(i)]["tid"] for i in b1]


# -- NaN -----------------------------------------------------------------------------------------

def test_nan_is_the_worst_value():
    assert rung_cutoff([NAN, 1.0, 2.0], 3) == pytest.approx(1 + 1 / 3)
    assert rung_cutoff([NAN, NAN, 5.0], 2) == -math.inf
    assert rung_cutoff([NAN, 5.0], 3) == -math.inf
    a = ASHAStrategy(space(), population=5, max_t=1000, grace_period=10, reduction_factor=3)
    # NaN first at the rung: no cutoff, continues; a number after it passes (cutoff -inf); a later NaN is
    # cut; an empty curve (no Q yet) is NaN too; -60 then meets [-inf, -inf, -inf, -50] -> cutoff -inf: kept
    d = a.decide(view(wv(0, 10, NAN), wv(1, 10, -50.0), wv(2, 10, NAN), wv(3, 10, None), wv(4, 10, -60.0)))
    assert cut_ids(d) == [2, 3]
    state = a.get_state()
    assert state["records"][0][0] == [[0, None], [1, -50.0], [2, None], [3, None], [4, -60.0]]
    json.dumps(state, allow_nan=False)                  # strict JSON: NaN saved as null
    assert math.isnan(a.records()[0][0][1])


def test_nan_is_told_to_the_sampler():
    sampler = LoggingSampler(space())
    a = ASHAStrategy(space(), population=2, max_t=1000, grace_period=10, sampler=sampler)
    a.decide(view(wv(0, 10, 1.0), wv(1, 10, NAN)))
    assert sampler.told[0][0] == 1 and math.isnan(sampler.told[0][1])


# -- slots outside ASHA's plan ---------------------------------------------------------------------

def test_pending_restart_dead_slot_and_foreign_restart():
    sampler = LoggingSampler(space())
    a = ASHAStrategy(space(), population=3, max_t=1000, grace_period=10, sampler=sampler)
    d = a.decide(view(wv(0, 10, 5.0), wv(1, 10, 1.0), wv(2, 5, 0.0)))
    assert cut_ids(d) == [1]
    # the restart is not yet visible (trial 0 at 20 steps): slot 1 is left alone
    assert a.decide(view(wv(0, 20, 5.0), wv(1, 20, 1.0), wv(2, 5, 0.0))) == []
    # slot 2 is dropped after a failure: its trial is told, no decision, then ignored
    assert a.decide(view(wv(0, 20, 5.0), wv(1, 0, None, trial=1), wv(2, 5, 0.7, alive=False))) == []
    assert sampler.told[-1] == (2, 0.7)
    assert a.decide(view(wv(0, 30, 5.0), wv(1, 10, 9.0, trial=1), wv(2, 50, 0.7, alive=False))) == []
    assert a.get_state()["slots"]["2"]["open"] is False
    with pytest.raises(ValueError, match="worker 0 is in trial 3"):
        a.decide(view(wv(0, 30, 5.0, trial=3)))


def test_sampler_out_of_configurations_stops_the_slot():
    configs = [{"lr": 1e-4, "batch": 32}, {"lr": 2e-4, "batch": 64}, {"lr": 3e-4, "batch": 128}]
    a = ASHAStrategy(space(), population=2, max_t=1000, grace_period=10, sampler=ListSampler(configs))
    assert [a.initial_hparams(s) for s in a.layout()] == configs[:2]
    d = a.decide(view(wv(0, 10, 2.0), wv(1, 10, 1.0)))
    assert d == [RestartTrial(1, configs[2], d[0].reason)]
    d = a.decide(view(wv(0, 1000, 3.0), wv(1, 10, 0.5, trial=1)))
    assert [type(x) for x in d] == [StopTrial, StopTrial]
    assert "completed" in d[0].reason and "nothing more to propose" in d[0].reason and "cut" in d[1].reason
    assert a.decide(view(wv(0, 1000, 3.0, stopped=True), wv(1, 10, 0.5, trial=1, stopped=True))) == []
    with pytest.raises(ValueError, match="population=3"):
        ASHAStrategy(space(), population=3, max_t=1000, grace_period=10, sampler=ListSampler(configs[:2]))


# -- determinism and state -----------------------------------------------------------------------

class FakeRun:
    """A tiny stand-in for the controller: every round each active slot trains ``eval_steps`` and gets a
    Q from its hparams; RestartTrial/StopTrial are carried out at once."""

    def __init__(self, strategy, eval_steps=7, total_steps=400):
        self.s, self.eval_steps, self.total = strategy, eval_steps, total_steps
        self.slots = {w.id: {"steps": 0, "q": [], "trial": 0, "spent": 0, "stopped": False,
                             "hp": strategy.initial_hparams(w)} for w in strategy.layout()}

    def q(self, hp, steps, wid):
        if (steps // self.eval_steps + wid) % 13 == 0:
            return NAN
        return math.log10(hp["lr"]) * -1.0 + hp["batch"] / 64 + 0.01 * steps

    def view(self):
        return view(*(wv(i, r["steps"], r["q"][-1] if r["q"] else None, r["trial"], stopped=r["stopped"],
                         hparams=r["hp"]) for i, r in self.slots.items()))

    def round(self):
        for i, r in self.slots.items():
            if not r["stopped"] and r["spent"] + r["steps"] < self.total:
                r["steps"] += self.eval_steps
                r["q"].append(self.q(r["hp"], r["steps"], i))
        v = self.view()
        decisions = self.s.decide(v)
        for d in decisions:
            r = self.slots[d.worker]
            if isinstance(d, RestartTrial):
                r.update(spent=r["spent"] + r["steps"], steps=0, q=[], trial=r["trial"] + 1, hp=dict(d.hparams))
            else:
                r["stopped"] = True
        return v, decisions


def make(seed=0, **kw):
    args = dict(population=6, max_t=120, grace_period=5, reduction_factor=2, brackets=3, seed=seed)
    args.update(kw)
    return ASHAStrategy(space(), **args)


def run_records(strategy, rounds=40):
    run = FakeRun(strategy)
    return [[to_record(d) for d in run.round()[1]] for _ in range(rounds)]


def test_same_seed_same_decisions_other_seed_other_hparams():
    a, b = run_records(make(seed=4)), run_records(make(seed=4))
    assert a == b
    assert sum(len(r) for r in a) >= 10                  # the run did cut and restart
    init = lambda s: [s.initial_hparams(w) for w in s.layout()]  # noqa: E731
    assert init(make(seed=4)) == init(make(seed=4)) != init(make(seed=5))
    hp = lambda recs: [d["hparams"] for r in recs for d in r]  # noqa: E731
    assert hp(a) != hp(run_records(make(seed=5)))


def test_default_sampler_starts_like_random_search():
    a = make(seed=7)
    rs = RandomSearchStrategy(space(), population=6, seed=7)
    assert [a.initial_hparams(w) for w in a.layout()] == [rs.initial_hparams(w) for w in rs.layout()]


@pytest.mark.parametrize("split", [3, 11, 25])
def test_state_round_trip_mid_run(split):
    a = make(seed=9)
    run = FakeRun(a)
    for _ in range(split):
        run.round()
    state = json.loads(json.dumps(a.get_state(), allow_nan=False))
    b = make(seed=9)
    b.set_state(state)
    assert b.get_state() == a.get_state()
    for _ in range(30):
        v, da = run.round()                              # a decided on v (and its decisions were applied)
        assert b.decide(v) == da
    assert b.get_state() == a.get_state()


def test_set_state_refuses_another_run():
    a = make()
    with pytest.raises(ValueError, match="reduction_factor"):
        make(reduction_factor=3).set_state(a.get_state())
    with pytest.raises(ValueError, match="pbt"):
        make().set_state({**a.get_state(), "strategy": "pbt"})


# -- arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, field", [
    ({"grace_period": 0}, "grace_period"),
    ({"grace_period": 2.5}, "grace_period"),
    ({"max_t": 10}, "max_t"),                            # = grace_period
    ({"max_t": 5}, "max_t"),
    ({"reduction_factor": 1}, "reduction_factor"),
    ({"reduction_factor": 1.0}, "reduction_factor"),
    ({"reduction_factor": 0.5}, "reduction_factor"),
    ({"reduction_factor": True}, "reduction_factor"),
    ({"reduction_factor": "3"}, "reduction_factor"),
    ({"reduction_factor": math.inf}, "reduction_factor"),
    ({"brackets": 0}, "brackets"),
    ({"brackets": 4}, "brackets"),                       # 10 * 3**3 = 270 >= max_t = 200
    ({"population": 0}, "population"),
    ({"seed": -1}, "seed"),
    ({"sampler": object()}, "sampler"),
])
def test_bad_arguments_name_the_field(kw, field):
    args = dict(population=4, max_t=200, grace_period=10, reduction_factor=3, brackets=3)
    args.update(kw)
    with pytest.raises(ValueError, match=field) as e:
        ASHAStrategy(space(), **args)
    assert "\n" not in str(e.value)


def test_largest_bracket_count_is_accepted_and_space_checked():
    ASHAStrategy(space(), population=4, max_t=200, grace_period=10, reduction_factor=3, brackets=3)
    ASHAStrategy(space(), population=4, max_t=200, grace_period=10, reduction_factor=1.5, brackets=7)
    with pytest.raises(ValueError, match="space"):
        ASHAStrategy({"lr": LogUniform(1e-5, 1e-3)}, population=4, max_t=200, grace_period=10)
    with pytest.raises(ValueError, match="bracket"):
        rung_milestones(10, 3, 200, -1)


def test_layout():
    a = make(population=5)
    assert list(a.layout()) == [WorkerSlot(i, MEMBER, 1) for i in range(5)]
