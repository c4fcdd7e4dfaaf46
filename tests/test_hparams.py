"""Hyperparameter space: validation, sampling, per-hparam explore factors, bounds, integers, choices."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rlpop.hparams import (Choice, Fixed, HParamSpace, IntUniform, LogUniform, Uniform, describe_change,
                           format_value)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda: LogUniform(1e-3, 1e-5), ["lo=", "hi=", "lo < hi"]),
    (lambda: Uniform(2.0, 2.0), ["lo=", "hi="]),
    (lambda: LogUniform(0.0, 1.0), ["lo=0.0", "log scale", "Uniform"]),
    (lambda: LogUniform(-1.0, 1.0), ["lo=-1.0", "> 0"]),
    (lambda: LogUniform(1e-5, 1e-3, factors=()), ["factors", "empty"]),
    (lambda: LogUniform(1e-5, 1e-3, factors=(0.5, 0.0)), ["factors", "> 0"]),
    (lambda: Uniform(0.0, 1.0, factors=(-1.0,)), ["factors", "> 0"]),
    (lambda: LogUniform(1e-5, 1e-3, resample_p=1.5), ["resample_p=1.5", "[0, 1]"]),
    (lambda: Choice([1, 2], resample_p=-0.1), ["resample_p=-0.1", "[0, 1]"]),
    (lambda: Uniform(0.0, 1.0, bounds=(1.0, 0.0)), ["bounds"]),
    (lambda: LogUniform(1e-5, 1e-3, bounds=(0.0, 1.0)), ["bounds", "> 0"]),
    (lambda: LogUniform(1e-5, 1e-3, bounds=(1e-4, 1.0)), ["bounds", "contain", "[lo, hi]"]),
    (lambda: Uniform(0.2, 0.8, integer=True), ["integer", "no integer"]),
    (lambda: Choice([]), ["values", "empty"]),
    (lambda: Choice([1, 1]), ["values", "duplicates"]),
    (lambda: Uniform(float("nan"), 1.0), ["lo=nan", "finite"]),
])
def test_each_validation_error_names_the_field(make, words):
    with pytest.raises(ValueError) as e:
        make()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_space_rejects_non_params_and_names_the_hparam():
    with pytest.raises(ValueError, match="'lr'.*LogUniform"):
        HParamSpace({"lr": (1e-5, 1e-3)})
    with pytest.raises(ValueError, match="non-empty string"):
        HParamSpace({"": Fixed(1)})


def test_perturb_errors_name_the_hparam():
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3), "batch": Choice([32, 64])})
    with pytest.raises(ValueError, match=r"lack \['batch'\]"):
        space.perturb({"lr": 1e-4}, rng())
    with pytest.raises(ValueError, match=r"hparam 'lr'.*> 0"):
        space.perturb({"lr": -1.0, "batch": 32}, rng())
    with pytest.raises(ValueError, match=r"hparam 'batch'.*not one of"):
        space.perturb({"lr": 1e-4, "batch": 48}, rng())


# -- sampling -----------------------------------------------------------------------------------

def test_log_uniform_samples_within_range_and_spread_in_log_space():
    p = LogUniform(1e-5, 1e-3)
    r = rng(1)
    xs = np.array([p.sample(r) for _ in range(4000)])
    assert xs.min() >= 1e-5 and xs.max() <= 1e-3
    assert all(type(x) is float for x in xs[:5].tolist())
    # log-uniform: half the mass below the geometric mean 1e-4
    assert abs(np.mean(xs < 1e-4) - 0.5) < 0.03
    # a linear-uniform draw would put only ~9% below 1e-4
    assert np.mean(np.log10(xs)) == pytest.approx(-4.0, abs=0.03)


def test_uniform_and_integer_sampling_ranges():
    r = rng(2)
    us = [Uniform(-1.0, 1.0).sample(r) for _ in range(2000)]
    assert min(us) >= -1.0 and max(us) <= 1.0 and abs(np.mean(us)) < 0.05
    ints = [IntUniform(1, 4).sample(r) for _ in range(2000)]
    assert set(ints) == {1, 2, 3, 4} and all(type(i) is int for i in ints)
    logints = [IntUniform(1, 8, log=True).sample(r) for _ in range(4000)]
    assert set(logints) == set(range(1, 9))
    # log scale: 1 is drawn far more often than 8
    assert logints.count(1) > 2 * logints.count(8)


def test_sampling_is_deterministic_per_seed():
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3), "eps": Uniform(0.1, 0.3), "n": IntUniform(1, 9),
                         "c": Choice(["a", "b", "c"]), "k": Fixed(7)})
    a = [space.sample(rng(5)) for _ in range(3)]
    b = [space.sample(rng(5)) for _ in range(3)]
    assert a == b
    assert space.sample(rng(5)) != space.sample(rng(6))
    assert a[0]["k"] == 7
    # plain Python values: the draws survive a JSON round trip unchanged, with their types
    assert json.loads(json.dumps(a)) == a
    assert [type(a[0][k]) for k in space.names] == [float, float, int, str, int]


# -- explore ------------------------------------------------------------------------------------

def test_each_hparam_uses_its_own_factor_list():
    """Paper 4.2: lr x [0.5, 0.8, 1.25, 2.0], eps_eta x [0.8, 0.95, 1.05, 1.2], independently."""
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3),
                         "eps_eta": LogUniform(5e-3, 2e-2, factors=(0.8, 0.95, 1.05, 1.2))})
    r = rng(3)
    h = {"lr": 1e-4, "eps_eta": 1e-2}
    lr_ratios, eps_ratios, pairs = set(), set(), set()
    for _ in range(400):
        new, changes = space.perturb(h, r)
        a = round(new["lr"] / h["lr"], 6)
        b = round(new["eps_eta"] / h["eps_eta"], 6)
        lr_ratios.add(a)
        eps_ratios.add(b)
        pairs.add((a, b))
        assert set(changes) == {"lr", "eps_eta"}
    assert lr_ratios == {0.5, 0.8, 1.25, 2.0}
    assert eps_ratios == {0.8, 0.95, 1.05, 1.2}
    assert len(pairs) == 16  # independent draws: every combination occurs


def test_unbounded_values_may_leave_the_sampling_range_but_bounds_clip():
    free = LogUniform(1e-5, 1e-3)
    r = rng(4)
    # bounds=None: a random walk of perturbations leaves the sampling range
    seen_above = False
    x = 1e-3
    for _ in range(200):
        x, _ = free.perturb(x, r)
        seen_above |= x > 1e-3
    assert seen_above
    bounded = LogUniform(1e-5, 1e-3, factors=(2.0,), bounds=(1e-6, 1.5e-3))
    v, desc = bounded.perturb(1e-3, r)
    assert v == 1.5e-3
    assert desc == "0.001 --(x2, clipped)--> 0.0015"
    low = Uniform(0.1, 0.5, factors=(0.5,), bounds=(0.05, 1.0))
    assert low.perturb(0.06, r)[0] == 0.05


def test_integers_grow_from_one_and_do_not_drop_below_bounds():
    up = IntUniform(1, 16, factors=(1.25,), log=True)
    assert up.perturb(1, rng())[0] == 2
    assert up.perturb(4, rng())[0] == 5  # 5.0 exactly
    assert up.perturb(5, rng())[0] == 7  # 6.25 -> ceil 7
    down = IntUniform(1, 16, factors=(0.8,), log=True)
    assert down.perturb(1, rng())[0] == 1  # log integers stay >= 1
    assert down.perturb(10, rng())[0] == 8
    assert down.perturb(9, rng())[0] == 7  # 7.2 -> floor 7
    lin = IntUniform(2, 16, factors=(0.8,), bounds=(2, 100))
    assert lin.perturb(2, rng())[0] == 2  # floor(1.6)=1 clipped to bound 2
    # a random walk from 1 with the default factors reaches well above 1
    p = IntUniform(1, 4, log=True)
    r, x, best = rng(9), 1, 1
    for _ in range(200):
        x, _ = p.perturb(x, r)
        assert isinstance(x, int) and x >= 1
        best = max(best, x)
    assert best >= 8


def test_choices_move_to_neighbours_and_stay_in_range():
    c = Choice([16, 32, 64, 128])
    r = rng(7)
    assert {c.perturb(16, r)[0] for _ in range(50)} == {32}
    assert {c.perturb(128, r)[0] for _ in range(50)} == {64}
    assert {c.perturb(32, r)[0] for _ in range(200)} == {16, 64}
    new, desc = c.perturb(16, r)
    assert desc == "16 --(+1)--> 32"
    new, desc = c.perturb(128, r)
    assert desc == "128 --(-1)--> 64"
    assert Choice(["adam"]).perturb("adam", r) == ("adam", "")


def test_resample_draws_from_initial_distribution():
    p = LogUniform(1e-5, 1e-3, factors=(2.0,), resample_p=1.0)
    r = rng(8)
    for _ in range(50):
        v, desc = p.perturb(1.0, r)  # far outside the range
        assert 1e-5 <= v <= 1e-3
        assert "--(resample)-->" in desc and desc.startswith("1 --(resample)--> ")
    c = Choice(["a", "b", "c", "d"], resample_p=1.0)
    assert {c.perturb("a", r)[0] for _ in range(200)} == {"a", "b", "c", "d"}


def test_fixed_never_changes_and_is_left_out_of_changes():
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3), "gamma": Fixed(0.99)})
    new, changes = space.perturb({"lr": 1e-4, "gamma": 0.99, "extra": "kept"}, rng())
    assert new["gamma"] == 0.99 and new["extra"] == "kept"
    assert set(changes) == {"lr"}


def test_perturb_is_deterministic_per_seed():
    space = HParamSpace({"lr": LogUniform(1e-5, 1e-3), "c": Choice([1, 2, 3]), "n": IntUniform(1, 9)})
    h = {"lr": 3e-4, "c": 2, "n": 3}
    a = [space.perturb(h, r) for r in [rng(11)] * 5]
    b = [space.perturb(h, r) for r in [rng(11)] * 5]
    assert a == b
    # the generator advances between calls, and another seed gives other draws
    assert len({json.dumps(x, sort_keys=True) for x in a}) > 1
    assert [space.perturb(h, r) for r in [rng(12)] * 5] != a


def test_description_format():
    assert format_value(3e-4) == "3e-4"
    assert format_value(2.4e-4) == "2.4e-4"
    assert format_value(1.2345e-5) == "1.23e-5"
    assert format_value(0.01) == "0.01"
    assert format_value(0.0123456) == "0.0123"
    assert format_value(1.5) == "1.5"
    assert format_value(64) == "64"
    assert format_value(123456.0) == "1.23e5"
    assert format_value("adam") == "adam"
    assert describe_change(3e-4, "x0.8", 2.4e-4) == "3e-4 --(x0.8)--> 2.4e-4"
    p = LogUniform(1e-5, 1e-3, factors=(0.8,))
    v, desc = p.perturb(3e-4, rng())
    assert v == pytest.approx(2.4e-4) and desc == "3e-4 --(x0.8)--> 2.4e-4"
