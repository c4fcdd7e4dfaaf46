"""Samplers of trial-based strategies: random, Optuna TPE and GP (ask/tell, ranges, seeds, checkpoints)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from rlpop.hparams import Choice, Fixed, HParamSpace, LogUniform, Uniform
from rlpop.strategies.common import initial_draws
from rlpop.strategies.samplers import (SAMPLERS, OptunaSampler, RandomSampler, Sampler, check_sampler,
                                       make_sampler, optuna_distribution, optuna_distributions)

NAN = float("nan")


def space() -> HParamSpace:
    return HParamSpace({
        "lr": LogUniform(1e-5, 1e-2),
        "batch": LogUniform(8, 256, integer=True),
        "clip": Uniform(0.1, 0.3),
        "epochs": Uniform(1.5, 10, integer=True),
        "act": Choice(["tanh", "relu", None]),
        "layers": Choice([(64, 64), (256, 256)]),
        "gamma": Fixed(0.99),
    })


def check_in_space(hp: dict) -> None:
    assert list(hp) == ["lr", "batch", "clip", "epochs", "act", "layers", "gamma"]
    assert type(hp["lr"]) is float and 1e-5 <= hp["lr"] <= 1e-2
    assert type(hp["batch"]) is int and 8 <= hp["batch"] <= 256
    assert type(hp["clip"]) is float and 0.1 <= hp["clip"] <= 0.3
    assert type(hp["epochs"]) is int and 2 <= hp["epochs"] <= 10
    assert hp["act"] in ("tanh", "relu", None)
    assert hp["layers"] in ((64, 64), (256, 256)) and type(hp["layers"]) is tuple
    assert hp["gamma"] == 0.99


def drive(s, values, n: int) -> list[dict]:
    """n rounds of ask then tell (value of the i-th trial: values(i, hp)); returns the hparams asked."""
    out = []
    for i in range(n):
        tid, hp = s.ask()
        assert tid == i
        out.append(hp)
        s.tell(tid, values(i, hp))
    return out


def score(i: int, hp: dict) -> float:
    return NAN if i == 2 else -abs(math.log(hp["lr"]) - math.log(3e-4)) - 0.01 * hp["epochs"]


def roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


# -- names and the distributions mapping ----------------------------------------------------------------

def test_names_factory_and_protocol():
    assert SAMPLERS == ("random", "tpe", "gp")
    for name in SAMPLERS:
        assert check_sampler(name) == name
        s = make_sampler(name, space(), 3)
        assert isinstance(s, Sampler)
    assert type(make_sampler("random", space(), 0)) is RandomSampler
    gp = make_sampler("gp", space(), 1)
    assert type(gp) is OptunaSampler and gp.kind == "gp" and gp.seed == 1


@pytest.mark.parametrize("bad", ["bogus", "TPE", "", None, 3])
def test_bad_sampler_name_is_a_one_line_error_listing_the_names(bad):
    with pytest.raises(ValueError) as e:
        check_sampler(bad)
    msg = str(e.value)
    assert "\n" not in msg and repr(bad) in msg
    for name in SAMPLERS:
        assert repr(name) in msg
    with pytest.raises(ValueError):
        make_sampler(bad, space(), 0)
    with pytest.raises(ValueError, match="'tpe', 'gp'"):
        OptunaSampler(space(), 0, kind=bad)


def test_distributions_of_each_param_type():
    assert optuna_distribution(LogUniform(1e-5, 1e-2)) == FloatDistribution(1e-5, 1e-2, log=True)
    assert optuna_distribution(LogUniform(0.5, 100.7, integer=True)) == IntDistribution(1, 100, log=True)
    assert optuna_distribution(Uniform(-1.0, 2.0)) == FloatDistribution(-1.0, 2.0)
    assert optuna_distribution(Uniform(1.5, 10, integer=True)) == IntDistribution(2, 10)
    assert optuna_distribution(Choice(["tanh", "relu", None])) == CategoricalDistribution(("tanh", "relu", None))
    assert optuna_distribution(Choice([2, 2.5, "x", False])) == CategoricalDistribution((2, 2.5, "x", False))
    # not Optuna/JSON primitives, or not distinct under ==: categorical over the indices
    assert optuna_distribution(Choice([(64, 64), (256, 256)])) == CategoricalDistribution((0, 1))
    assert optuna_distribution(Choice([True, 1])) == CategoricalDistribution((0, 1))
    assert optuna_distribution(Choice([np.int64(3), np.int64(4)])) == CategoricalDistribution((0, 1))
    assert optuna_distribution(Fixed(0.99)) is None
    assert list(optuna_distributions(space())) == ["lr", "batch", "clip", "epochs", "act", "layers"]


# -- asks ---------------------------------------------------------------------------------------------

def test_random_sampler_draws_like_random_search_and_round_trips():
    s = RandomSampler(space(), seed=5)
    first = [s.ask()[1] for _ in range(4)]
    assert first == initial_draws(space(), 4, 5)
    s.tell(1, 0.5)
    s.tell(3, NAN)
    state = roundtrip(s.get_state())
    t = RandomSampler(space(), seed=5)
    t.set_state(state)
    assert t.get_state() == s.get_state()
    assert [t.ask() for _ in range(5)] == [s.ask() for _ in range(5)]
    for _, hp in [t.ask() for _ in range(50)]:
        check_in_space(hp)
    assert RandomSampler(space(), seed=6).ask() != RandomSampler(space(), seed=5).ask()


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_asks_stay_in_range_and_repeat_per_seed(name):
    kw = {} if name == "random" else {"n_startup_trials": 4}

    def make(seed):
        return RandomSampler(space(), seed) if name == "random" else OptunaSampler(space(), seed, "tpe", **kw)

    a = drive(make(0), score, 25)
    for hp in a:
        check_in_space(hp)
    assert {hp["layers"] for hp in a} == {(64, 64), (256, 256)}
    assert drive(make(0), score, 25) == a
    assert drive(make(1), score, 25) != a


def test_tell_checks_the_id_and_the_value():
    for s in (RandomSampler(space(), 0), OptunaSampler(space(), 0)):
        tid, _ = s.ask()
        with pytest.raises(ValueError, match="never asked"):
            s.tell(tid + 1, 1.0)
        with pytest.raises(ValueError, match="number"):
            s.tell(tid, "high")
        s.tell(tid, 1.0)
    o = OptunaSampler(space(), 0)
    tid, _ = o.ask()
    o.tell(tid, NAN)
    with pytest.raises(ValueError, match="already told"):
        o.tell(tid, 2.0)
    assert o.get_state()["trials"][0]["state"] == "fail" and o.get_state()["trials"][0]["value"] is None


def test_tpe_uses_the_told_results():
    """Trials valued by the distance of log(lr) to log(3e-4): after 40 told trials, TPE's next
    20 (each told in turn) lie much nearer 3e-4 than random draws from the same range."""
    sp = HParamSpace({"lr": LogUniform(1e-7, 1e-1), "unused": Uniform(0.0, 1.0)})
    dist = lambda hp: abs(math.log(hp["lr"]) - math.log(3e-4))  # noqa: E731
    asked = drive(OptunaSampler(sp, seed=0, kind="tpe"), lambda i, hp: -dist(hp), 60)
    later = np.array([dist(hp) for hp in asked[40:]])
    rand = RandomSampler(sp, seed=0)
    random_draws = np.array([dist(rand.ask()[1]) for _ in range(200)])
    assert np.median(later) < 0.5 * np.median(random_draws)
    assert np.mean(later < 1.0) > 2 * np.mean(random_draws < 1.0)   # within a factor e of 3e-4


# -- checkpoints -----------------------------------------------------------------------------------

def run_script(s, steps) -> list:
    """Replay a script of ("ask",) / ("tell", id) steps; returns what each ask gave."""
    got = []
    for step in steps:
        if step[0] == "ask":
            got.append(s.ask())
        else:
            tid = step[1]
            s.tell(tid, score(tid, dict(got[tid][1])) if tid != 4 else NAN)
    return got


def check_resume(make, script, split):
    """A sampler checkpointed after script[:split] and restored into a fresh one continues exactly as
    the uninterrupted one; the restored history (ids, states, values) equals the saved one."""
    whole = make()
    full = run_script(whole, script)

    first = make()
    before = run_script(first, script[:split])
    assert before == full[:len(before)]                      # reproducible per seed
    state = roundtrip(first.get_state())
    trials = state["trials"]
    assert [t["id"] for t in trials] == list(range(len(before)))
    assert "running" in {t["state"] for t in trials}             # some asked, not yet told

    resumed = make()
    resumed.set_state(state)
    assert resumed.get_state() == state                      # history kept: len, states, params, values
    assert resumed.n_trials == len(before)
    got = list(before)
    for step in script[split:]:                               # tells include ids asked before the checkpoint
        if step[0] == "ask":
            got.append(resumed.ask())
        else:
            tid = step[1]
            resumed.tell(tid, score(tid, dict(got[tid][1])) if tid != 4 else NAN)
    assert got == full
    assert resumed.get_state() == whole.get_state()
    for _, hp in full:
        check_in_space(hp)
    return whole


TPE_SCRIPT = ([("ask",)] * 6 + [("tell", i) for i in (0, 1, 3, 4)] + [("ask",)] * 3
              + [("tell", i) for i in (2, 5, 6)] + [("ask",)] * 3 + [("tell", i) for i in (7, 8)] + [("ask",)] * 4)


@pytest.mark.parametrize("split", [6, 10, 13, 16])
def test_tpe_round_trip_continues_like_the_uninterrupted_run(split):
    whole = check_resume(lambda: OptunaSampler(space(), seed=11, kind="tpe", n_startup_trials=3),
                         TPE_SCRIPT, split)
    states = [t["state"] for t in whole.get_state()["trials"]]
    assert states.count("fail") == 2 and states.count("running") == 7  # 2 and 4 told NaN


def test_gp_reproducible_and_round_trip():
    """GPSampler (slow: few trials, 2 startup): restored from a checkpoint with a trial still running,
    a fresh sampler asks what the uninterrupted one asks -- the GP's ask is a function of (seed,
    history), as GPSampler (and its kernel cache) is re-created for every ask."""
    script = [("ask",), ("ask",), ("ask",), ("tell", 0), ("tell", 1),      # checkpoint: trial 2 running
              ("tell", 2), ("ask",)]                                         # ask 3 uses the GP
    check_resume(lambda: OptunaSampler(space(), seed=2, kind="gp", n_startup_trials=2), script, 5)


def test_set_state_refuses_another_sampler_seed_or_space():
    s = OptunaSampler(space(), seed=1, n_startup_trials=2)
    drive(s, score, 3)
    state = roundtrip(s.get_state())
    with pytest.raises(ValueError, match="'tpe', not 'gp'"):
        OptunaSampler(space(), seed=1, kind="gp").set_state(state)
    with pytest.raises(ValueError, match="seed"):
        OptunaSampler(space(), seed=2).set_state(state)
    with pytest.raises(ValueError, match="same space"):
        OptunaSampler(HParamSpace({"lr": LogUniform(1e-5, 1e-2)}), seed=1).set_state(state)
    narrow = HParamSpace({**space().params, "lr": LogUniform(1.0, 2.0)})
    with pytest.raises(ValueError, match="does not fit"):
        OptunaSampler(narrow, seed=1).set_state(state)
    with pytest.raises(ValueError, match="'tpe', not 'random'"):
        RandomSampler(space(), 1).set_state(state)
