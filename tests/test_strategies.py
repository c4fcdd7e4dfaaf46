"""Random search and PBT on hand-built population views (no RL, no learners)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlpop.decisions import Exploit, Explore
from rlpop.hparams import Choice, HParamSpace, LogUniform
from rlpop.strategies import PBTStrategy, RandomSearchStrategy, truncation_count, truncation_pairs
from rlpop.view import MEMBER, PopulationView, WorkerSlot, WorkerView

LR_FACTORS = (0.5, 0.8, 1.25, 2.0)
EPS_FACTORS = (0.8, 0.95, 1.05, 1.2)


def space() -> HParamSpace:
    return HParamSpace({"lr": LogUniform(1e-5, 1e-3, factors=LR_FACTORS),
                        "eps": LogUniform(5e-3, 2e-2, factors=EPS_FACTORS)})


def worker(wid: int, steps: int, q: float | None, hparams: dict, has_state: bool = True) -> WorkerView:
    qs = np.array([] if q is None else [q - 1.0, q])
    return WorkerView(id=wid, role=MEMBER, subpop=1, steps=steps, hparams=hparams,
                      curve_steps=np.array([steps - 100, steps][:len(qs)], dtype=float), curve_q=qs,
                      has_state=has_state, reported_q=math.nan if q is None else q)


def view_of(qs, steps=1000, hparams=None, no_state=()) -> PopulationView:
    ws = {}
    for i, q in enumerate(qs):
        h = hparams[i] if hparams else {"lr": 1e-4 * (i + 1), "eps": 0.01}
        ws[i] = worker(i, steps, q, h, has_state=i not in no_state)
    return PopulationView(ws)


# -- truncation selection -------------------------------------------------------------------------

@pytest.mark.parametrize("n", range(4, 51))
def test_truncation_counts_bottom_and_top_quarter(n):
    k = n // 4
    assert truncation_count(n, 0.25) == k
    fitness = list(np.random.default_rng(n).permutation(n).astype(float))
    ids = list(range(100, 100 + n))
    pairs = truncation_pairs(ids, fitness, 0.25, np.random.default_rng(0))
    ranked = [i for _, i in sorted(zip(fitness, ids))]
    bottom, top = set(ranked[:k]), set(ranked[-k:])
    assert len(pairs) == k
    assert {d for _, d in pairs} == bottom
    assert {s for s, _ in pairs} <= top
    assert all(s != d for s, d in pairs)


def test_truncation_counts_small_populations_and_other_quantiles():
    assert [truncation_count(n, 0.25) for n in range(0, 8)] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert truncation_count(8, 0.25) == 2
    assert truncation_count(50, 0.25) == 12
    assert truncation_count(10, 0.5) == 5
    assert truncation_count(10, 0.3) == 3  # 0.3 * 10 is 3.0000000000000004 in floats
    assert truncation_count(20, 0.35) == 7


def test_truncation_skips_nan_and_ties_and_respects_dst_allowed():
    rng = np.random.default_rng(0)
    # NaN members are not ranked: among 4 finite ones, the worst (id 3) copies the best (id 1)
    assert truncation_pairs([0, 1, 2, 3, 4], [math.nan, 9.0, 5.0, 1.0, 4.0], 0.25, rng) == [(1, 3)]
    assert truncation_pairs([0, 1], [math.nan, 1.0], 0.25, rng) == []
    # all tied: nobody is strictly fitter, nobody copies
    assert truncation_pairs(list(range(8)), [2.0] * 8, 0.25, rng) == []
    # only allowed dsts act
    pairs = truncation_pairs(list(range(8)), [0, 1, 2, 3, 4, 5, 6, 7], 0.25, rng, dst_allowed={1, 5})
    assert [d for _, d in pairs] == [1] and pairs[0][0] in {6, 7}
    with pytest.raises(ValueError, match="ids but"):
        truncation_pairs([0, 1], [1.0], 0.25, rng)


def test_truncation_sources_are_drawn_uniformly_from_the_top():
    rng = np.random.default_rng(1)
    counts = dict.fromkeys(range(15, 20), 0)  # n = 20 -> top 5 = ids 15..19
    for _ in range(1000):
        (src, dst), *_ = truncation_pairs(list(range(20)), list(range(20)), 0.25, rng)
        assert dst == 0
        counts[src] += 1
    assert all(150 < c < 250 for c in counts.values()), counts


# -- random search --------------------------------------------------------------------------------

def test_random_search_layout_hparams_and_no_decisions():
    rs = RandomSearchStrategy(space(), 5, seed=3)
    assert [(s.id, s.role, s.subpop) for s in rs.layout()] == [(i, MEMBER, 1) for i in range(5)]
    hs = [rs.initial_hparams(s) for s in rs.layout()]
    assert hs == [RandomSearchStrategy(space(), 5, seed=3).initial_hparams(s) for s in rs.layout()]
    assert len({h["lr"] for h in hs}) == 5 and all(1e-5 <= h["lr"] <= 1e-3 for h in hs)
    assert rs.decide(view_of([1.0, 2.0, 3.0, 4.0, 5.0])) == []
    with pytest.raises(ValueError, match="population"):
        RandomSearchStrategy(space(), 0)


def test_random_search_state_round_trip_gives_identical_behaviour():
    rs = RandomSearchStrategy(space(), 5, seed=3)
    hs = [rs.initial_hparams(s) for s in rs.layout()]
    views = [view_of([1.0, 2.0, 3.0, 4.0, 5.0], steps=500 * r, hparams=hs) for r in range(1, 4)]
    before = [rs.decide(v) for v in views]
    state = json.loads(json.dumps(rs.get_state()))  # survives the run directory's JSON
    assert state == rs.get_state()
    resumed = RandomSearchStrategy(space(), 5, seed=3)
    resumed.set_state(state)
    # the restored strategy makes the same initial draws and the same (empty) decisions as the original
    assert [resumed.initial_hparams(s) for s in resumed.layout()] == hs
    assert [resumed.decide(v) for v in views] == before == [[], [], []]
    assert resumed.get_state() == state
    # the state says whose it is: PBT refuses it, and random search refuses PBT's
    with pytest.raises(ValueError, match="random_search"):
        PBTStrategy(space(), 5, 1000, seed=3).set_state(state)
    with pytest.raises(ValueError, match="pbt"):
        resumed.set_state(PBTStrategy(space(), 5, 1000, seed=3).get_state())


# -- PBT ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    (dict(population=0), "population"),
    (dict(population=1), "population"),
    (dict(quantile=0.0), "quantile"),
    (dict(quantile=0.6), "quantile"),
    (dict(ready_steps=0), "ready_steps"),
    (dict(seed=-1), "seed"),
])
def test_pbt_bad_inputs(kwargs, field):
    args = dict(space=space(), population=8, ready_steps=1000, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        PBTStrategy(**args)
    with pytest.raises(ValueError, match="HParamSpace"):
        PBTStrategy({"lr": LogUniform(1e-5, 1e-3)}, 8, 1000)


def test_pbt_initial_hparams_do_not_depend_on_call_order():
    a, b = PBTStrategy(space(), 6, 1000, seed=4), PBTStrategy(space(), 6, 1000, seed=4)
    slots = list(a.layout())
    forward = [a.initial_hparams(s) for s in slots]
    backward = [b.initial_hparams(s) for s in reversed(slots)][::-1]
    assert forward == backward
    assert forward != [PBTStrategy(space(), 6, 1000, seed=5).initial_hparams(s) for s in slots]


def test_pbt_exploits_bottom_quarter_with_perturbed_source_hparams():
    pbt = PBTStrategy(space(), 8, ready_steps=1000, seed=0)
    qs = [5.0, 1.0, 7.0, 0.5, 3.0, 8.0, 6.0, 2.0]  # bottom 2: ids 3, 1; top 2: ids 5, 2
    v = view_of(qs)
    ds = pbt.decide(v)
    assert len(ds) == 4
    exploits, explores = ds[0::2], ds[1::2]
    assert all(isinstance(d, Exploit) for d in exploits) and all(isinstance(d, Explore) for d in explores)
    assert [d.dst for d in exploits] == [3, 1]  # worst first
    for ex, ep in zip(exploits, explores):
        assert ex.src in {5, 2} and ep.dst == ex.dst
        src_h = v[ex.src].hparams
        assert round(ep.hparams["lr"] / src_h["lr"], 9) in LR_FACTORS
        assert round(ep.hparams["eps"] / src_h["eps"], 9) in EPS_FACTORS
        assert set(ep.changes) == {"lr", "eps"} and "--(x" in ep.changes["lr"]


def test_pbt_never_copies_a_member_without_state_or_q():
    qs = [5.0, 1.0, 7.0, 0.5, 3.0, 100.0, 6.0, None]
    for seed in range(20):
        pbt = PBTStrategy(space(), 8, 1000, seed=seed)
        ds = pbt.decide(view_of(qs, no_state={5}))  # id 5 has the best Q but no state
        srcs = {d.src for d in ds if isinstance(d, Exploit)}
        dsts = {d.dst for d in ds if isinstance(d, Exploit)}
        # ranked: ids 0,1,2,3,4,6 (6 members) -> k = 1: id 3 copies id 2, the best with state
        assert srcs == {2} and dsts == {3}


def test_pbt_synchronous_waits_for_every_member():
    pbt = PBTStrategy(space(), 4, ready_steps=1000, seed=0)
    qs = [1.0, 2.0, 3.0, 4.0]
    v = view_of(qs)
    lagging = PopulationView({**v.workers, 2: worker(2, 900, 3.0, v[2].hparams)})
    state = json.dumps(pbt.get_state())
    assert pbt.decide(lagging) == []
    assert json.dumps(pbt.get_state()) == state  # nothing marked, no rng drawn
    ds = pbt.decide(v)
    assert [(d.src, d.dst) for d in ds if isinstance(d, Exploit)] == [(3, 0)]
    # right after an event nobody is ready again until another ready_steps
    assert pbt.decide(view_of(qs, steps=1500)) == []
    assert len(pbt.decide(view_of(qs, steps=2000))) == 2


def test_pbt_asynchronous_only_ready_members_are_exploited():
    pbt = PBTStrategy(space(), 8, ready_steps=1000, seed=0, synchronous=False)
    qs = [5.0, 1.0, 7.0, 0.5, 3.0, 8.0, 6.0, 2.0]  # bottom 2: ids 3, 1
    v = view_of(qs)
    ws = dict(v.workers)
    ws[3] = worker(3, 900, 0.5, v[3].hparams)  # the worst one is not ready yet
    ds = pbt.decide(PopulationView(ws))
    assert [d.dst for d in ds if isinstance(d, Exploit)] == [1]
    # id 3 becomes ready later and is compared against the whole population
    ws = {i: worker(i, 1000, q, v[i].hparams) for i, q in enumerate(qs)}
    ds = pbt.decide(PopulationView(ws))
    assert [d.dst for d in ds if isinstance(d, Exploit)] == [3]


def _run(pbt: PBTStrategy, rounds: int, seed: int = 0, first_round: int = 1, hparams: dict | None = None):
    """Drive ``pbt`` with pseudo-random Q's, applying its Explore decisions to the
    members' hparams; returns (decisions per round, final hparams)."""
    rng = np.random.default_rng(seed)
    hparams = dict(hparams) if hparams else {s.id: pbt.initial_hparams(s) for s in pbt.layout()}
    out = []
    for r in range(first_round, first_round + rounds):
        qs = rng.normal(size=len(hparams))
        v = PopulationView({i: worker(i, 500 * r, float(q), hparams[i]) for i, q in enumerate(qs)})
        ds = pbt.decide(v)
        for d in ds:
            if isinstance(d, Explore):
                hparams[d.dst] = dict(d.hparams)
        out.append(ds)
    return out, hparams


def test_pbt_is_deterministic_per_seed():
    a, _ = _run(PBTStrategy(space(), 12, 1000, seed=7), 10)
    b, _ = _run(PBTStrategy(space(), 12, 1000, seed=7), 10)
    c, _ = _run(PBTStrategy(space(), 12, 1000, seed=8), 10)
    assert a == b
    assert a != c
    assert sum(len(ds) for ds in a) == 5 * 2 * 3  # 5 events x 3 pairs x (Exploit + Explore)


def test_pbt_state_round_trip_gives_identical_decisions():
    full = PBTStrategy(space(), 12, 1000, seed=2)
    _, hparams = _run(full, 5)  # events at rounds 2, 4; round 5 is half-way to the next
    state = json.loads(json.dumps(full.get_state()))
    rest_a, _ = _run(full, 6, seed=99, first_round=6, hparams=hparams)
    resumed = PBTStrategy(space(), 12, 1000, seed=123)  # a different seed: the state must override it
    resumed.set_state(state)
    rest_b, _ = _run(resumed, 6, seed=99, first_round=6, hparams=hparams)
    assert [bool(ds) for ds in rest_a] == [True, False, True, False, True, False]
    assert rest_a == rest_b
    with pytest.raises(ValueError, match="strategy"):
        resumed.set_state({"strategy": "fire_pbt"})


def test_pbt_hparams_outside_the_space_pass_through_explore():
    sp = HParamSpace({"lr": LogUniform(1e-5, 1e-3), "batch": Choice([32, 64, 128])})
    pbt = PBTStrategy(sp, 4, 1000, seed=0)
    hs = [{"lr": 1e-4, "batch": 64, "gamma": 0.99} for _ in range(4)]
    ds = pbt.decide(view_of([1.0, 2.0, 3.0, 4.0], hparams=hs))
    explore = ds[1]
    assert explore.hparams["gamma"] == 0.99 and explore.hparams["batch"] in {32, 128}
    assert WorkerSlot(0) in pbt.layout()


def test_one_vocabulary_from_the_experiment_file_to_the_strategy():
    """Every strategy takes exactly its specs' fields as keyword arguments (besides the space and the seed; ASHA's
    ``search`` becomes its ``sampler``), and the built strategy holds the value given."""
    import dataclasses
    import importlib
    import inspect

    from rlpop import experiment as e
    from rlpop.hparams import HParamSpace, LogUniform
    from rlpop.strategies import FIREStrategy

    sp = HParamSpace({"lr": LogUniform(1e-4, 1e-2)})
    fields: dict[type, set[str]] = {}
    for spec in e.STRATEGY_SPECS:
        module, name = spec.builds.rsplit(".", 1)
        impl = getattr(importlib.import_module(f"rlpop.strategies.{module}"), name)
        assert spec is e.Replay or type(spec().build(sp, 0)) is impl
        fields.setdefault(impl, set()).update(f.name for f in dataclasses.fields(spec))
    for impl, names in fields.items():
        params = set(inspect.signature(impl).parameters) - {"space", "seed"}
        if "search" in names:
            names = names - {"search"} | {"sampler"}
        assert params == names, (impl.__name__, sorted(params ^ names))
        assert impl.__name__.endswith("Strategy") and not hasattr(e, impl.__name__)

    specs = [(e.RandomSearch(population=5), RandomSearchStrategy),
             (e.PBT(population=6, ready_steps=300, quantile=0.5, synchronous=False), PBTStrategy),
             (e.FIRE(subpops=3, subpop_size=4, evaluators=5, ready_steps=100, max_eval_steps=900,
                     min_steps_before_eval=(7,), p_stat=0.05, quantile=0.5, synchronous=False, min_curve_points=3),
              FIREStrategy)]
    for spec, impl in specs:
        built = spec.build(sp, 0)
        assert type(built) is impl
        for f in dataclasses.fields(spec):
            if f.name not in ("subpops", "subpop_size", "min_steps_before_eval"):
                assert getattr(built, f.name) == getattr(spec, f.name), f.name
    fire = specs[2][0].build(sp, 0)
    assert fire.subpop_sizes == (4, 4, 4)
    assert fire.min_steps_before_eval == {2: 7, 3: 7}  # one value: every parent sub-population
    assert e.FIRE(subpop_size=[3, 5], evaluators=None).build(sp, 0).subpop_sizes == (3, 5)


def test_a_diverged_member_copies_the_best_peer_with_other_hparams_under_pbt_and_nobody_under_random_search():
    same = {"lr": 1e-4, "eps": 0.01}
    hp = [same, same, {"lr": 2e-4, "eps": 0.01}, {"lr": 3e-4, "eps": 0.01}, same]
    v = view_of([float("nan"), 9.0, 5.0, 7.0, float("nan")], hparams=hp, no_state=(4,))
    pbt = PBTStrategy(space(), 5, 1000)
    assert pbt.replacement(v, 0) == 3       # w1 scores best but has w0's hparams: the best of the others
    assert pbt.replacement(v, 3) == 1       # every other peer differs: the best one
    only_same = view_of([float("nan"), 9.0, 5.0], hparams=[same, same, same])
    assert pbt.replacement(only_same, 0) == 1  # none differs: the best peer
    assert pbt.replacement(view_of([float("nan"), float("nan")]), 0) is None  # no peer with a finite Q
    assert RandomSearchStrategy(space(), 5).replacement(v, 0) is None
