"""PB2 on hand-built population views (no RL, no learners): PBT's exploit, a GP-bandit explore."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlpop.decisions import Exploit, Explore
from rlpop.hparams import Choice, Fixed, HParamSpace, IntUniform, LogUniform, Uniform
from rlpop.strategies.pb2 import PB2Strategy
from rlpop.strategies.pbt import PBTStrategy
from rlpop.view import MEMBER, PopulationView, WorkerSlot, WorkerView

READY = 1000


def mixed_space() -> HParamSpace:
    return HParamSpace({"lr": LogUniform(1e-5, 1e-3, bounds=(1e-6, 1e-2)),
                        "clip": Uniform(0.1, 0.3),
                        "epochs": IntUniform(1, 10),
                        "batch": IntUniform(16, 512, log=True),
                        "opt": Choice(["adam", "sgd", "rmsprop"]),
                        "gamma": Fixed(0.99)})


def lr_space() -> HParamSpace:
    return HParamSpace({"lr": LogUniform(1e-5, 1e-3), "opt": Choice(["adam", "sgd"])})


class Sim:
    """A tiny controller: members train ``READY`` steps per round, Q grows by ``gain(hparams, rng)``;
    decisions are carried out (Exploit copies Q, curve restarts; Explore sets hparams)."""

    def __init__(self, strategy, gain, seed=0, eval_every=250):
        self.s, self.gain = strategy, gain
        self.rng = np.random.default_rng(seed + 100)
        self.eval_every = eval_every
        n = strategy.population
        self.h = [strategy.initial_hparams(WorkerSlot(i, MEMBER, 1)) for i in range(n)]
        self.q = [0.0] * n
        self.steps = [0] * n
        self.curve = [[(0, 0.0)] for _ in range(n)]
        self.log = []

    def view(self) -> PopulationView:
        ws = {}
        for i in range(len(self.h)):
            c = self.curve[i]
            ws[i] = WorkerView(id=i, role=MEMBER, subpop=1, steps=self.steps[i], hparams=dict(self.h[i]),
                               curve_steps=np.array([s for s, _ in c], dtype=float),
                               curve_q=np.array([q for _, q in c]), has_state=self.steps[i] > 0)
        return PopulationView(ws)

    def train(self):
        for i in range(len(self.h)):
            g = self.gain(self.h[i], self.rng)
            for k in range(1, READY // self.eval_every + 1):
                self.q[i] += g * self.eval_every / READY
                self.curve[i].append((self.steps[i] + k * self.eval_every, self.q[i]))
            self.steps[i] += READY

    def round(self):
        self.train()
        return self.apply(self.s.decide(self.view()))

    def apply(self, decisions):
        for d in decisions:
            if isinstance(d, Exploit):
                self.q[d.dst] = self.q[d.src]
                self.h[d.dst] = dict(self.h[d.src])
                self.curve[d.dst] = []
            else:
                self.h[d.dst] = dict(d.hparams)
        self.log.append(decisions)
        return decisions


def random_gain(h, rng):
    return float(rng.normal())


def pb2(space=None, **kw) -> PB2Strategy:
    kw.setdefault("population", 8)
    kw.setdefault("ready_steps", READY)
    kw.setdefault("candidates", 200)
    return PB2Strategy(space or mixed_space(), **kw)


def check_in_bounds(space: HParamSpace, h: dict) -> None:
    for name, p in space.params.items():
        v = h[name]
        if isinstance(p, (LogUniform, Uniform)):
            lo, hi = p.bounds if p.bounds is not None else (p.lo, p.hi)
            assert lo <= v <= hi, (name, v)
            assert isinstance(v, int) if p.integer else isinstance(v, float), (name, v)
        elif isinstance(p, Choice):
            assert v in p.values
        else:
            assert v == p.value


# -- suggestions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_suggestions_stay_within_exploration_bounds(seed):
    space = mixed_space()
    sim = Sim(pb2(space, seed=seed, candidates=500), random_gain, seed=seed)
    n_ucb = 0
    for _ in range(3):
        for d in sim.round():
            if isinstance(d, Explore):
                check_in_bounds(space, d.hparams)
                n_ucb += "PB2 UCB" in d.changes["lr"]
                assert set(d.changes) >= {"lr", "clip", "epochs", "batch"} and "gamma" not in d.changes
    assert n_ucb >= 4     # 2 exploits a round, the GP from the first ready event on


def test_extreme_candidates_map_to_the_bounds():
    from rlpop.strategies.pb2 import _from_unit, _to_unit

    lr, n, b = LogUniform(1e-5, 1e-3, bounds=(1e-6, 1e-2)), IntUniform(1, 10), IntUniform(16, 512, log=True)
    assert _from_unit(lr, 0.0) == pytest.approx(1e-6) and _from_unit(lr, 1.0) == pytest.approx(1e-2)
    assert _from_unit(lr, 0.5) == pytest.approx(1e-4)
    assert (_from_unit(n, 0.0), _from_unit(n, 1.0), _from_unit(b, 0.0), _from_unit(b, 1.0)) == (1, 10, 16, 512)
    for p in (lr, n, b, Uniform(-1.0, 2.0)):
        for u in np.linspace(0, 1, 101):
            v = _from_unit(p, u)
            assert _box_contains(p, v)
            assert abs(_to_unit(p, v) - u) < (0.06 if p.integer else 1e-9)


def _box_contains(p, v):
    lo, hi = p.bounds if p.bounds is not None else (p.lo, p.hi)
    return lo <= v <= hi


def test_changes_read_like_pbt_and_choice_moves_like_pbt():
    sim = Sim(pb2(lr_space(), seed=3), random_gain, seed=3)
    sim.round()
    explores = [d for d in sim.round() if isinstance(d, Explore)]
    assert explores
    for d in explores:
        assert " --(PB2 UCB)--> " in d.changes["lr"]
        assert " --(+1)--> " in d.changes["opt"] or " --(-1)--> " in d.changes["opt"]


def test_without_data_the_copy_keeps_its_continuous_hparams():
    space = lr_space()
    s = PB2Strategy(space, population=4, ready_steps=READY)
    h = [{"lr": 1e-5 * 2 ** i, "opt": "adam"} for i in range(4)]
    ws = {i: WorkerView(id=i, role=MEMBER, subpop=1, steps=READY, hparams=h[i], curve_steps=np.array([READY]),
                        curve_q=np.array([float(i)]), has_state=True) for i in range(4)}
    ds = s.decide(PopulationView(ws))
    assert [type(d) for d in ds] == [Exploit, Explore]
    assert ds[1].hparams["lr"] == h[ds[0].src]["lr"]
    assert "no data yet" in ds[1].changes["lr"]


# -- exploit is PBT's -----------------------------------------------------------------------------

@pytest.mark.parametrize("synchronous", [True, False])
def test_exploit_pairs_and_choice_moves_match_pbt(synchronous):
    space = lr_space()
    rng = np.random.default_rng(7)
    a = PB2Strategy(space, population=12, ready_steps=READY, seed=5, synchronous=synchronous, candidates=100)
    b = PBTStrategy(space, population=12, ready_steps=READY, seed=5, synchronous=synchronous)
    assert [a.initial_hparams(WorkerSlot(i)) for i in range(12)] == [b.initial_hparams(WorkerSlot(i))
                                                                      for i in range(12)]
    h = [a.initial_hparams(WorkerSlot(i)) for i in range(12)]
    n_pairs = 0
    for r in range(1, 5):
        steps = [r * READY + (0 if synchronous else int(rng.integers(-300, 300))) for _ in range(12)]
        ws = {i: WorkerView(id=i, role=MEMBER, subpop=1, steps=steps[i], hparams=h[i],
                            curve_steps=np.array([steps[i] - 500, steps[i]], dtype=float),
                            curve_q=np.array([0.0, float(rng.normal())]), has_state=True) for i in range(12)}
        va = a.decide(PopulationView(ws))
        vb = b.decide(PopulationView(ws))
        assert [d for d in va if isinstance(d, Exploit)] == [d for d in vb if isinstance(d, Exploit)]
        assert [(d.dst, d.hparams["opt"]) for d in va if isinstance(d, Explore)] == \
            [(d.dst, d.hparams["opt"]) for d in vb if isinstance(d, Explore)]
        n_pairs += sum(isinstance(d, Exploit) for d in va)
        for d in va:
            if isinstance(d, Explore):
                h[d.dst] = dict(d.hparams)
    assert n_pairs >= 4


# -- the bandit follows the data -------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["rising", "falling", "peak at 0.3"])
def test_suggested_lr_follows_where_improvement_is(shape):
    """Improvement per interval rises / falls with log lr, or peaks inside the range: the lrs PB2 suggests
    go to the top / the bottom / the peak (not merely to an edge, where the std is largest)."""
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3)})

    def gain(h, rng):
        pos = math.log(h["lr"] / 1e-5) / math.log(100.0)          # 0 .. 1 over the range
        f = {"rising": pos, "falling": -pos, "peak at 0.3": 1.0 - 4.0 * (pos - 0.3) ** 2}[shape]
        return f + 0.05 * float(rng.normal())

    sim = Sim(PB2Strategy(space, population=8, ready_steps=READY, seed=11, candidates=300), gain, seed=11)
    suggested = []
    for _ in range(8):
        suggested += [math.log(d.hparams["lr"] / 1e-5) / math.log(100.0) for d in sim.round()
                      if isinstance(d, Explore)]
    assert len(suggested) >= 14
    late = suggested[-8:]
    if shape == "rising":
        assert np.mean(late) > 0.8, suggested
    elif shape == "falling":
        assert np.mean(late) < 0.2, suggested
    else:
        assert abs(np.median(late) - 0.3) < 0.08, suggested


def test_a_batch_spreads_out_when_the_data_say_nothing():
    """Points chosen earlier in a decision lower the std near them (pending points), so with
    uninformative data the copies of one batch do not all get the same hparams."""
    from rlpop.strategies.pb2 import _fit

    rng = np.random.default_rng(0)
    rows = np.column_stack([np.full(16, READY), 0.01 * rng.normal(size=16), 0.5 * rng.random((16, 1))])
    s = PB2Strategy(HParamSpace({"lr": LogUniform(1e-5, 1e-3)}), population=8, ready_steps=READY, candidates=300)
    s._data = rows.tolist()
    model = _fit(rows, READY)
    pending = []
    for _ in range(4):
        pending.append([0.0, *s._choose(model, 0.0, np.asarray(pending, dtype=float))])
    picks = sorted(p[1] for p in pending)
    assert min(np.diff(picks)) > 0.1, picks


# -- determinism and state --------------------------------------------------------------------------

def decisions_of(strategy, rounds=3, seed=0):
    sim = Sim(strategy, random_gain, seed=seed)
    return [sim.round() for _ in range(rounds)]


def test_same_seed_same_decisions_other_seed_other_suggestions():
    a = decisions_of(pb2(seed=4))
    assert a == decisions_of(pb2(seed=4))
    c = decisions_of(pb2(seed=5))
    lrs = lambda ds: [d.hparams["lr"] for r in ds for d in r if isinstance(d, Explore)]  # noqa: E731
    assert lrs(a) != lrs(c)


def test_state_round_trip_decides_identically():
    space = mixed_space()
    ref = Sim(pb2(space, seed=2), random_gain, seed=2)
    for _ in range(3):
        ref.round()
    state = json.loads(json.dumps(ref.s.get_state()))
    assert state["strategy"] == "pb2" and len(state["data"]) == 24 and state["base"]
    restored = pb2(space, seed=2)
    restored.set_state(state)
    assert restored.get_state() == state
    for _ in range(2):
        ref.train()
        v = ref.view()
        ds = ref.s.decide(v)
        assert ds and restored.decide(v) == ds
        ref.apply(ds)
    assert restored.get_state() == ref.s.get_state()


def test_state_round_trip_continues_a_run_identically():
    space = mixed_space()
    full = Sim(pb2(space, seed=9), random_gain, seed=9)
    for _ in range(4):
        full.round()
    part = Sim(pb2(space, seed=9), random_gain, seed=9)
    for _ in range(2):
        part.round()
    resumed = pb2(space, seed=9)
    resumed.set_state(json.loads(json.dumps(part.s.get_state())))
    part.s = resumed
    for _ in range(2):
        part.round()
    assert part.log == full.log


def test_data_are_bounded_and_state_checks_its_kind_and_width():
    s = pb2(max_data=10, seed=1)
    sim = Sim(s, random_gain)
    for _ in range(3):
        sim.round()
    assert len(s.get_state()["data"]) == 10
    with pytest.raises(ValueError, match="strategy 'pbt'"):
        s.set_state({"strategy": "pbt"})
    bad = s.get_state()
    bad["data"] = [[1000, 0.5, 0.2]]
    with pytest.raises(ValueError, match="hparam space"):
        s.set_state(bad)


# -- arguments and plan ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, field", [
    ({"population": 1}, "population"), ({"population": 2.5}, "population"), ({"ready_steps": 0}, "ready_steps"),
    ({"quantile": 0.7}, "quantile"), ({"seed": -1}, "seed"), ({"kappa": -1.0}, "kappa"),
    ({"kappa": "big"}, "kappa"), ({"kappa": float("nan")}, "kappa"), ({"candidates": 0}, "candidates"),
    ({"max_data": 1}, "max_data")])
def test_bad_arguments_name_the_field(kw, field):
    args = {"population": 4, "ready_steps": READY, **kw}
    with pytest.raises(ValueError, match=f"PB2: {field}=") as e:
        PB2Strategy(lr_space(), **args)
    assert "\n" not in str(e.value)


def test_bad_space_names_the_fix():
    with pytest.raises(ValueError, match="HParamSpace"):
        PB2Strategy({"lr": LogUniform(1e-5, 1e-3)}, population=4, ready_steps=READY)
    with pytest.raises(ValueError, match="use PBT"):
        PB2Strategy(HParamSpace({"opt": Choice(["a", "b"]), "g": Fixed(0.9)}), population=4, ready_steps=READY)


def test_plan_is_one_paragraph_naming_what_it_does():
    text = pb2(seed=3, kappa=1.5).plan()
    assert "\n" not in text
    for part in ("PB2", "8 members", "1000 steps", "bottom 0.25", "lr in [1e-6, 0.01] (log)",
                 "epochs in [1, 10] (integer)", "UCB", "kappa=1.5", "200 random candidates", "opt (Choice) perturbed as in PBT",
                 "gamma fixed"):
        assert part in text, part
    assert "Ray's schedule" in pb2().plan()
