"""The deceptive toy learner (rlpop.toy): determinism, exact state round-trip, the deception itself."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlpop.toy import NoisyQuadratic, expected_loss

HIGH, LOW = 1.0, 0.05  # stable range is lr < 2 / h_max = 2
WARMUP, SHORT, LONG, DECAY_AT = 500, 200, 3000, 2500


def q_values(learner: NoisyQuadratic, chunks: list[int]) -> list[float]:
    return [learner.train(n).episode_returns[0] for n in chunks]


def test_deterministic_per_seed():
    a, b, c = NoisyQuadratic({"lr": 0.3}, 7), NoisyQuadratic({"lr": 0.3}, 7), NoisyQuadratic({"lr": 0.3}, 8)
    qa, qb, qc = q_values(a, [50, 100, 25]), q_values(b, [50, 100, 25]), q_values(c, [50, 100, 25])
    assert qa == qb
    np.testing.assert_array_equal(a.get_state()["w"], b.get_state()["w"])
    assert qa != qc


def test_state_round_trip_continues_bit_identically():
    src = NoisyQuadratic({"lr": 0.4}, 1)
    src.train(120)
    state = src.get_state()
    expected = q_values(src, [30, 60, 10])
    dst = NoisyQuadratic({"lr": 0.01}, 99)  # different seed, weights and lr: all overwritten
    dst.set_state(state)
    assert dst.get_hparams() == {"lr": 0.4}
    assert dst.step == 120
    assert q_values(dst, [30, 60, 10]) == expected
    np.testing.assert_array_equal(dst.get_state()["w"], src.get_state()["w"])


def test_get_state_is_a_snapshot():
    learner = NoisyQuadratic({"lr": 0.4}, 2)
    state = learner.get_state()
    w_before = state["w"].copy()
    learner.train(50)
    np.testing.assert_array_equal(state["w"], w_before)
    assert state["step"] == 0


def test_q_is_minus_log10_of_the_noise_free_loss():
    learner = NoisyQuadratic({"lr": 0.2}, 3, eval_noise=0.0)
    assert learner.loss() == pytest.approx(10 * 0.5)  # every direction starts at 1/2
    result = learner.train(40)
    assert result.steps == 40
    assert result.episode_returns == [pytest.approx(-math.log10(result.metrics["loss"]))]
    assert result.metrics["lr"] == 0.2
    noisy = NoisyQuadratic({"lr": 0.2}, 3, eval_noise=0.05).train(40)
    assert noisy.metrics["loss"] == result.metrics["loss"]  # the eval noise is drawn after the steps
    assert 0.0 < abs(noisy.episode_returns[0] - result.episode_returns[0]) < 0.25


def test_expected_loss_matches_the_simulation():
    lr, steps = 0.5, 300
    losses = [NoisyQuadratic({"lr": lr}, seed).train(steps).metrics["loss"] for seed in range(64)]
    learner = NoisyQuadratic({}, 0)
    predicted = expected_loss(learner.get_state()["w"], learner.h, [(lr, steps)])
    assert predicted == pytest.approx(1.066, abs=1e-3)
    assert np.mean(losses) == pytest.approx(predicted, rel=0.1)
    # the stationary floor is lr sigma^2 / 4 * sum(h) to first order in lr h
    floor = expected_loss(np.zeros(10), learner.h, [(0.01, 10**6)])
    assert floor == pytest.approx(0.01 / 4 * learner.h.sum(), rel=0.01)


def test_deception_in_expectation():
    """Exact second-moment dynamics: lowering lr wins at 200 steps and loses at 3000."""
    learner = NoisyQuadratic({}, 0)
    w, h = learner.get_state()["w"], learner.h
    warm = [(HIGH, WARMUP)]
    greedy_short = -math.log10(expected_loss(w, h, warm + [(LOW, SHORT)]))
    patient_short = -math.log10(expected_loss(w, h, warm + [(HIGH, SHORT)]))
    greedy_long = -math.log10(expected_loss(w, h, warm + [(LOW, LONG)]))
    patient_long = -math.log10(expected_loss(w, h, warm + [(HIGH, DECAY_AT), (LOW, LONG - DECAY_AT)]))
    assert greedy_short - patient_short > 0.45  # 0.55 vs 0.04
    assert patient_long - greedy_long > 0.75  # 1.51 vs 0.72


def test_deception_in_simulation():
    """From the same state: lowering lr now looks better after SHORT steps but ends worse after LONG
    than keeping lr high until DECAY_AT and decaying then (mean Q over 16 seeds)."""
    greedy_short, patient_short, greedy_long, patient_long = [], [], [], []
    for seed in range(16):
        warm = NoisyQuadratic({"lr": HIGH}, seed)
        warm.train(WARMUP)
        state = warm.get_state()
        greedy, patient = NoisyQuadratic({}, 0), NoisyQuadratic({}, 0)
        greedy.set_state(state)
        patient.set_state(state)
        greedy.set_hparams({"lr": LOW})
        greedy_short.append(greedy.train(SHORT).episode_returns[0])
        patient_short.append(patient.train(SHORT).episode_returns[0])
        greedy_long.append(greedy.train(LONG - SHORT).episode_returns[0])
        patient.train(DECAY_AT - SHORT)
        patient.set_hparams({"lr": LOW})
        patient_long.append(patient.train(LONG - DECAY_AT).episode_returns[0])
    short_gain = np.mean(greedy_short) - np.mean(patient_short)
    long_loss = np.mean(patient_long) - np.mean(greedy_long)
    assert short_gain > 0.25  # measured ~0.45
    assert long_loss > 0.6  # measured ~0.9
    assert np.mean(greedy_short) > 0.45 and np.mean(patient_long) > 1.3


def test_set_hparams_rejects_unknown_names():
    learner = NoisyQuadratic({"lr": 0.1}, 0)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['momentum'\].*valid: \['lr'\]"):
        learner.set_hparams({"momentum": 0.9})
    with pytest.raises(ValueError, match="'lr' must be a finite number > 0"):
        learner.set_hparams({"lr": -0.1})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        NoisyQuadratic({"lr": 0.1, "batch": 32}, 0)
    assert learner.get_hparams() == {"lr": 0.1}
    assert NoisyQuadratic.mutable_hparams == frozenset({"lr"})


def test_divergent_lr_stays_finite():
    learner = NoisyQuadratic({"lr": 5.0}, 0)  # above 2 / h_max: the stiff directions blow up
    q = learner.train(200).episode_returns[0]
    assert math.isfinite(q) and q < -10.0
    assert np.all(np.abs(learner.get_state()["w"]) <= 1e6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        NoisyQuadratic({}, 0).train(0)
    with pytest.raises(ValueError, match="h_min"):
        NoisyQuadratic({}, 0, h_min=2.0, h_max=1.0)
    with pytest.raises(ValueError, match="state is missing"):
        NoisyQuadratic({}, 0).set_state({"w": np.zeros(10)})


def test_constructor_options():
    learner = NoisyQuadratic({"lr": 0.3}, 4, dim=3, grad_noise=0.0)
    assert learner.h.size == 3 and learner.get_hparams() == {"lr": 0.3}
    # no gradient noise: plain gradient descent, loss decays exactly as (1 - lr h)^(2t)
    result = learner.train(10)
    assert result.metrics["loss"] == pytest.approx(0.5 * np.sum((1 - 0.3 * learner.h) ** 20))
    learner.close()
