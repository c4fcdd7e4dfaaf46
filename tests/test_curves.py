"""FIRE curve math (rlpop.curves) on hand-built curves with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from rlpop import curves
from rlpop.curves import (
    Comparison,
    best_score_diff,
    binom_test,
    compare,
    overlap_sections,
    smooth,
    stop_threshold,
)


# --- the paper's Figure 3 situation ------------------------------------------------------------

def figure3_curves():
    """A: starts low at step 1000, fast then slow; B: starts at 1500 at A's late level.

    A(x) = 5 (1 - exp(-(x-1000)/100)) + 0.001 (x-1000): 0 -> 6.0 over 1000 steps.
    B(x) = 5 + 0.0018 (x-1500): 5.0 -> 5.9 over 500 steps.
    A first reaches B's start (5.0) at x=1300 (index 6: A(1250)=4.84, A(1300)=5.05).
    Overlap: r=6, s=0, n=min(21-6, 11-0)=11; A's section is x=1300..1800 (max A(1800)=5.80),
    B's is all of B (max 5.9) -> best_score_diff(B, A) = 5.9 - 5.80 = +0.10.
    With the paper's printed max, n=15 and A's section would reach A(2000)=6.0 -> -0.10.
    """
    xa = 1000.0 + 50.0 * np.arange(21)
    ya = 5.0 * (1.0 - np.exp(-(xa - 1000.0) / 100.0)) + 0.001 * (xa - 1000.0)
    xb = 1500.0 + 50.0 * np.arange(11)
    yb = 5.0 + 0.0018 * (xb - 1500.0)
    return xa, ya, xb, yb


def test_figure3_right_curve_wins_although_left_has_higher_average_rate():
    xa, ya, xb, yb = figure3_curves()
    # the naive whole-curve average improvement rate prefers A ...
    assert (ya[-1] - ya[0]) / (xa[-1] - xa[0]) > 3 * (yb[-1] - yb[0]) / (xb[-1] - xb[0])
    # ... but at equal level over equal length, B improves more than A does there
    assert yb[10] - yb[0] > ya[16] - ya[6]
    expected = yb.max() - ya[6:17].max()
    assert expected == pytest.approx(0.1017, abs=1e-3)
    assert best_score_diff(xb, yb, xa, ya) == pytest.approx(expected, abs=1e-12)
    assert best_score_diff(xa, ya, xb, yb) == pytest.approx(-expected, abs=1e-12)


def test_figure3_overlap_uses_min_length():
    xa, ya, xb, yb = figure3_curves()
    ha, hb = smooth(xa, ya), smooth(xb, yb)
    assert overlap_sections(ha, hb) == (6, 0, 11)  # the printed max would give n=15
    assert overlap_sections(hb, ha) == (0, 6, 11)
    # with n=15 the difference would flip sign: the min is what makes B win
    assert yb[:15].max() - ya[6:21].max() < 0 < yb.max() - ya[6:17].max()


# --- overlapping sections ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("eta", "kappa", "expected"),
    [
        (np.arange(10.0), [2.5, 3.0, 3.5], (3, 0, 3)),  # max(10-3, 3-0) would be 7
        ([5.0, 6.0, 7.0], [0.0, 2.0, 4.0, 5.0, 6.0], (0, 3, 2)),  # max would be 3
        ([1.0, 2.0], [1.0, 5.0, 6.0], (0, 0, 2)),  # tie at the start
        ([0.0, 1.0, 2.0], [3.0, 4.0], None),  # eta never reaches 3
        ([], [1.0, 2.0], None),
    ],
)
def test_overlap_sections_hand_checked(eta, kappa, expected):
    assert overlap_sections(eta, kappa) == expected


def test_overlap_sections_rejects_nan():
    with pytest.raises(ValueError, match="yhat_kappa"):
        overlap_sections([1.0, 2.0], [np.nan, 2.0])


# --- symmetry --------------------------------------------------------------------------------

def clean_pairs():
    x = 100.0 * np.arange(12)
    return {
        "figure3": figure3_curves(),
        "strictly_above": (x, 10.0 + np.sqrt(x / 10.0), x, 0.2 * np.sqrt(x)),
        "crossing": (x, 2.0 + 0.3 * np.arange(12), x, 1.1 + 0.5 * np.arange(12)),
        "falling_vs_rising": (x, 10.0 - 0.8 * np.arange(12), x, 3.0 + 0.25 * np.arange(12)),
    }


@pytest.mark.parametrize("name", list(clean_pairs()))
def test_antisymmetry_on_clean_curves(name):
    xe, ye, xk, yk = clean_pairs()[name]
    assert best_score_diff(xe, ye, xk, yk) == pytest.approx(-best_score_diff(xk, yk, xe, ye), abs=1e-12)


def test_crossing_curves_known_value():
    # eta = 2 + 0.3 i, kappa = 1.1 + 0.5 i: kappa reaches 2 at i=2 (2.1) -> r=0, s=2, n=10
    xe, ye, xk, yk = clean_pairs()["crossing"]
    assert best_score_diff(xe, ye, xk, yk) == pytest.approx(ye[:10].max() - yk[2:12].max())
    assert best_score_diff(xe, ye, xk, yk) == pytest.approx(4.7 - 6.6)


def test_identical_curves_score_zero():
    x = 100.0 * np.arange(15)
    y = np.log1p(x / 300.0)
    assert best_score_diff(x, y, x, y) == 0.0
    assert binom_test(x, y, x, y) == 1.0  # no point strictly above


# --- strictly above: the penalised-delta sweep ------------------------------------------------

def test_flat_high_curve_beats_nothing():
    x = 100.0 * np.arange(10)
    eta, kappa = np.full(10, 10.0), np.linspace(0.0, 5.0, 10)
    assert best_score_diff(x, eta, x, kappa) == 0.0
    assert best_score_diff(x, kappa, x, eta) == 0.0


def test_higher_and_faster_curve_wins_after_penalty():
    x = 100.0 * np.arange(10)
    eta, kappa = np.linspace(10.0, 20.0, 10), np.linspace(0.0, 5.0, 10)
    assert overlap_sections(smooth(x, eta), smooth(x, kappa)) is None  # the special case
    score = best_score_diff(x, eta, x, kappa)
    # delta=10 lines the starts up: eta rises 10 where kappa rises 5 (+-1 grid point of rounding)
    assert 3.5 < score < 6.0
    assert best_score_diff(x, kappa, x, eta) == -score


def test_no_overlap_without_being_strictly_above_scores_zero():
    x = 100.0 * np.arange(12)
    falling, rising = 10.0 - 0.8 * np.arange(12), 3.0 + 0.25 * np.arange(12)
    assert overlap_sections(smooth(x, falling), smooth(x, rising)) is None
    assert best_score_diff(x, falling, x, rising) == 0.0
    assert binom_test(x, falling, x, rising) is None


def naive_sweep(y_hi, h_hi, y_lo, h_lo):
    """The paper's special case written as a plain loop over the public functions."""
    best = 0.0
    for delta in np.linspace(y_hi.min() - y_lo.max(), y_hi.min() - y_lo.min(), curves.DELTA_GRID):
        sections = overlap_sections(h_hi - delta, h_lo)
        if sections is not None:
            r, s, n = sections
            best = max(best, np.max(y_hi[r : r + n] - delta) - np.max(y_lo[s : s + n]))
    return best


def test_vectorised_sweep_equals_the_plain_loop():
    rng = np.random.default_rng(11)
    positives = 0
    for _ in range(60):
        n_hi, n_lo = rng.integers(3, 25, size=2)
        h_lo = np.cumsum(rng.uniform(0.0, rng.uniform(0.05, 1.0), n_lo))
        h_hi = h_lo.max() + rng.uniform(0.1, 3.0) + np.cumsum(rng.uniform(0.0, rng.uniform(0.05, 1.0), n_hi))
        y_lo, y_hi = h_lo + rng.normal(0, 0.05, n_lo), h_hi + rng.normal(0, 0.05, n_hi)
        x_hi, x_lo = np.arange(float(n_hi)), np.arange(float(n_lo))
        got = best_score_diff(x_hi, y_hi, x_lo, y_lo, yhat_eta=h_hi, yhat_kappa=h_lo)
        assert overlap_sections(h_hi, h_lo) is None
        assert got == pytest.approx(naive_sweep(y_hi, h_hi, y_lo, h_lo), abs=1e-9)
        positives += got > 0
    assert 10 < positives < 50  # both outcomes are exercised


# --- noise: smoothing places the sections, raw values are compared -------------------------

def noisy_pair():
    rng = np.random.default_rng(3)
    xe = 100.0 * np.arange(30)
    ye = np.linspace(0.0, 6.0, 30) + 0.25 * rng.normal(size=30)
    ye[4] += 3.0  # one lucky evaluation that reaches kappa's level early
    xk = 1500.0 + 100.0 * np.arange(15)
    yk = 3.0 + np.linspace(0.0, 2.5, 15) + 0.25 * rng.normal(size=15)
    return xe, ye, xk, yk


def test_smoothing_moves_the_overlap_start():
    xe, ye, xk, yk = noisy_pair()
    raw_start = int(np.flatnonzero(ye >= yk[0])[0])
    assert raw_start == 4  # the spike
    r, s, n = overlap_sections(smooth(xe, ye), smooth(xk, yk))
    assert (s, n) == (0, 15)
    assert 13 <= r <= 17  # where the underlying line 6i/29 reaches ~3.0


def test_best_score_diff_compares_raw_maxima():
    xe, ye, xk, yk = noisy_pair()
    he, hk = smooth(xe, ye), smooth(xk, yk)
    r, s, n = overlap_sections(he, hk)
    raw = ye[r : r + n].max() - yk[s : s + n].max()
    smoothed = he[r : r + n].max() - hk[s : s + n].max()
    assert abs(raw - smoothed) > 0.03
    assert best_score_diff(xe, ye, xk, yk) == pytest.approx(raw, abs=1e-12)
    # passing the cached fits gives the same answer
    assert best_score_diff(xe, ye, xk, yk, yhat_eta=he, yhat_kappa=hk) == pytest.approx(raw, abs=1e-12)


def test_smooth_is_closer_to_the_truth_than_the_data():
    rng = np.random.default_rng(0)
    x = 200.0 * np.arange(40)
    truth = 5.0 * (1.0 - np.exp(-x / 3000.0))
    y = truth + 0.3 * rng.normal(size=40)
    err_raw = np.sqrt(np.mean((y - truth) ** 2))
    err_gp = np.sqrt(np.mean((smooth(x, y) - truth) ** 2))
    assert err_gp < 0.65 * err_raw  # measured 0.54


def test_smooth_reproduces_a_clean_curve():
    xa, ya, _, _ = figure3_curves()
    assert np.max(np.abs(smooth(xa, ya) - ya)) < 1e-2


# --- binomial test -----------------------------------------------------------------------------

def test_binom_test_hand_computed():
    x = np.arange(8.0)
    ye = np.array([1, 2, 3, 4, 5, 6, 7, 8.0])
    yk = np.array([0, 1, 2, 3, 4, 5, 6, 9.0])  # eta above at 7 of 8 points
    level = np.zeros(8)  # equal smoothed starts: sections (0, 0, 8)
    p = binom_test(x, ye, x, yk, yhat_eta=level, yhat_kappa=level)
    assert p == pytest.approx(9 / 256)  # P(X >= 7), X ~ B(8, 1/2) = (8 + 1) / 256
    assert binom_test(x, yk, x, ye, yhat_eta=level, yhat_kappa=level) == pytest.approx(255 / 256)


def test_binom_test_on_offset_sections():
    # yhat_eta reaches kappa's start (3) at r=3; n = min(8-3, 5) = 5; eta above at all 5 -> 1/32
    ye = np.array([0, 1, 2, 3.5, 4.5, 5.5, 6.5, 7.5])
    yk = np.array([3.0, 4.0, 5.0, 6.0, 7.0])
    p = binom_test(np.arange(8.0), ye, np.arange(5.0), yk, yhat_eta=np.arange(8.0), yhat_kappa=yk)
    assert p == pytest.approx(1 / 32)


def test_binom_test_none_without_overlap():
    x = np.arange(5.0)
    assert binom_test(x, np.arange(5.0), x, np.arange(5.0) + 10.0) is None


# --- stopping threshold --------------------------------------------------------------------------

def test_stop_threshold_decays_to_p_stat():
    assert stop_threshold(0.01, 0, 1000) == pytest.approx(1.01)
    assert stop_threshold(0.01, 500, 1000) == pytest.approx(0.51)
    assert stop_threshold(0.01, 1000, 1000) == pytest.approx(0.01)
    assert stop_threshold(0.01, 5000, 1000) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("args", "field"),
    [((0.01, 10, 0), "max_eval_steps"), ((1.5, 10, 100), "p_stat"), ((0.01, -1, 100), "t")],
)
def test_stop_threshold_rejects_bad_input(args, field):
    with pytest.raises(ValueError, match=field):
        stop_threshold(*args)


# --- compare ---------------------------------------------------------------------------------------

def test_compare_shares_one_pair_of_fits(monkeypatch):
    xa, ya, xb, yb = figure3_curves()
    calls = []
    real = curves.smooth
    monkeypatch.setattr(curves, "smooth", lambda x, y: calls.append(1) or real(x, y))
    result = compare(xb, yb, xa, ya)
    assert len(calls) == 2
    assert result == Comparison(
        score_diff=pytest.approx(yb.max() - ya[6:17].max()),
        p_value=pytest.approx(binom_test(xb, yb, xa, ya)),
        overlap=True,
    )
    # B is above A[6:17] only at its last 3 points: P(X >= 3), X ~ B(11, 1/2) = 1 - (1+11+55)/2048
    assert int(np.sum(yb > ya[6:17])) == 3
    assert result.p_value == pytest.approx(1981 / 2048)


def test_compare_without_overlap():
    x = 100.0 * np.arange(10)
    result = compare(x, np.linspace(10.0, 20.0, 10), x, np.linspace(0.0, 5.0, 10))
    assert result.overlap is False and result.p_value is None
    assert result.score_diff > 3.5


# --- degenerate input -----------------------------------------------------------------------------

def test_smooth_degenerate_inputs():
    assert smooth([], []).shape == (0,)
    np.testing.assert_array_equal(smooth([3.0], [7]), [7.0])
    np.testing.assert_array_equal(smooth([1.0, 2.0], [7, 9]), [7.0, 9.0])
    np.testing.assert_array_equal(smooth(np.arange(6.0), np.full(6, 4.2)), np.full(6, 4.2))
    assert np.all(np.isnan(smooth([1.0, 2.0, 3.0], [np.nan, np.inf, np.nan])))


def test_smooth_ignores_non_finite_points():
    x = 100.0 * np.arange(12)
    y = np.sqrt(x / 100.0)
    y_bad = y.copy()
    y_bad[[3, 7]] = [np.nan, np.inf]
    keep = np.isfinite(y_bad)
    out = smooth(x, y_bad)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[keep], smooth(x[keep], y[keep]), atol=1e-9)
    assert out[3] == pytest.approx(y[3], abs=0.1)  # predicted where the point was dropped
    # two finite points: linear fill
    np.testing.assert_allclose(smooth([0.0, 1.0, 2.0], [1.0, np.nan, 3.0]), [1.0, 2.0, 3.0])


def test_comparisons_on_degenerate_curves():
    x = 100.0 * np.arange(8)
    y = np.linspace(0.0, 3.0, 8)
    assert best_score_diff([], [], x, y) == 0.0
    assert binom_test([], [], x, y) is None
    assert compare(x, y, [], []) == Comparison(0.0, None, False)
    assert best_score_diff([0.0], [1.0], [0.0], [2.0]) == 0.0
    assert best_score_diff(x, np.full(8, np.nan), x, y) == 0.0
    assert best_score_diff(x, np.full(8, 2.0), x, np.full(8, 2.0)) == 0.0
    # a NaN point is simply dropped
    y_nan = y.copy()
    y_nan[2] = np.nan
    keep = np.isfinite(y_nan)
    y2 = y + 0.5
    assert best_score_diff(x, y_nan, x, y2) == pytest.approx(best_score_diff(x[keep], y[keep], x, y2))


def test_bad_curves_raise_with_the_field_named():
    with pytest.raises(ValueError, match="x has 3 points but y has 2"):
        smooth([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="x contains NaN"):
        best_score_diff([np.nan, 1.0], [1.0, 2.0], [0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="yhat_eta"):
        best_score_diff([0.0, 1.0], [1.0, 2.0], [0.0, 1.0], [1.0, 2.0], yhat_eta=[1.0])
