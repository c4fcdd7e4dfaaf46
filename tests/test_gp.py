"""The empirical-Bayes GP fit behind FIRE's smoothing (rlpop.gp; paper 3.1.1, step 1).

gp.fit fits ``ConstantKernel * Matern(nu=2.5) + WhiteKernel`` to the curve with
``x`` mapped to [0, 1] and ``y`` standardised (scikit-learn's ``normalize_y``),
the hyperparameters bounded in log space, and returns the posterior mean. These
tests check it against scikit-learn's own ``GaussianProcessRegressor`` on the
same scaled problem: its likelihood maximum is at least as high, its smoothed
values the same.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from rlpop import curves, gp


def _scaled_problem(x: np.ndarray, y: np.ndarray):
    """What gp.fit fits: x in [0, 1], standardised y, and its log-space bounds."""
    xu = (x - x.min()) / np.ptp(x)
    target = (y - y.mean()) / y.std()
    ls_min = min(max(float(np.median(np.diff(np.sort(xu)))), 1e-3), 0.5)
    bounds = np.log([gp._AMPLITUDE_BOUNDS, (ls_min, gp._LENGTH_SCALE_MAX), gp._NOISE_BOUNDS])
    return xu, target, bounds


def _sklearn_gp(xu: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> GaussianProcessRegressor:
    """scikit-learn's own empirical-Bayes fit of the same model (2 random restarts besides its start)."""
    amp_b, ls_b, noise_b = (tuple(np.exp(b)) for b in bounds)
    kernel = (ConstantKernel(1.0, amp_b) * Matern(max(0.3, ls_b[0]), ls_b, nu=2.5)
              + WhiteKernel(0.1, noise_b))
    model = GaussianProcessRegressor(kernel, alpha=gp._JITTER, normalize_y=True, n_restarts_optimizer=2,
                                     random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # optima at a bound (e.g. noise-free curves)
        return model.fit(xu[:, None], y)


def _training_curves():
    """Synthetic FIRE-like training curves (name, x in actor steps, y = Q)."""
    rng = np.random.default_rng(3)
    x20 = 1000.0 * np.arange(1, 21)
    x50 = 500.0 * np.arange(50)
    return [
        ("concave rising", x20, 400.0 * (1.0 - np.exp(-x20 / 6000.0)) + 8.0 * rng.normal(size=20)),
        ("noisy flat", x20, 200.0 + 5.0 * rng.normal(size=20)),
        ("step", x20, np.where(x20 > 10_500.0, 300.0, 100.0) + 3.0 * rng.normal(size=20)),
        ("3 points", np.array([0.0, 2048.0, 4096.0]), np.array([12.0, 40.0, 47.0])),
        ("50 points", x50, np.log1p(x50 / 2000.0) + 0.1 * rng.normal(size=50)),
    ]


@pytest.mark.parametrize("name, x, y", _training_curves(), ids=[c[0] for c in _training_curves()])
def test_fit_matches_scikit_learns_gp(name, x, y):
    xu, target, bounds = _scaled_problem(x, y)
    theta = gp._empirical_bayes(np.abs(xu[:, None] - xu[None, :]), target, bounds)
    ref = _sklearn_gp(xu, y, bounds)
    # the same objective: scikit-learn's log marginal likelihood (on its normalised y) at our theta
    ours = ref.log_marginal_likelihood(theta)
    assert ours >= ref.log_marginal_likelihood_value_ - 1e-3, (name, ours, ref.log_marginal_likelihood_value_)
    smoothed = gp.fit(x, y)
    np.testing.assert_allclose(smoothed, ref.predict(xu[:, None]), rtol=0, atol=0.02 * y.std(), err_msg=name)
    # and the public call is that fit's posterior mean
    kernel = (ConstantKernel(np.exp(theta[0]), "fixed") * Matern(np.exp(theta[1]), "fixed", nu=2.5)
              + WhiteKernel(np.exp(theta[2]), "fixed"))
    fixed = GaussianProcessRegressor(kernel, optimizer=None, alpha=gp._JITTER, normalize_y=True).fit(xu[:, None], y)
    np.testing.assert_allclose(smoothed, fixed.predict(xu[:, None]), rtol=0, atol=1e-9 * y.std(), err_msg=name)


def test_curves_smooth_is_gp_fit():
    for _, x, y in _training_curves():
        np.testing.assert_array_equal(curves.smooth(x, y), gp.fit(x, y))


def test_fit_emits_no_convergence_warning():
    x = 100.0 * np.arange(20)
    y = 0.01 * x  # noise-free: the noise level ends at its lower bound
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gp.fit(x, y)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    # the same fit unsilenced does warn, so the check above can fail
    kernel = ConstantKernel(1.0) * Matern(0.5, nu=2.5) + WhiteKernel(0.1, (1e-6, 10.0))
    with pytest.warns(ConvergenceWarning):
        GaussianProcessRegressor(kernel).fit(np.linspace(0, 1, 20)[:, None], (y - y.mean()) / y.std())


def test_fast_objective_equals_sklearn_marginal_likelihood():
    rng = np.random.default_rng(7)
    x = np.sort(rng.uniform(0.0, 1.0, 25))
    y = np.sin(6.0 * x) + 0.2 * rng.normal(size=25)
    kernel = ConstantKernel(1.0) * Matern(0.5, nu=2.5) + WhiteKernel(0.1)
    model = GaussianProcessRegressor(kernel, optimizer=None, alpha=gp._JITTER).fit(x[:, None], y)
    dist = np.abs(x[:, None] - x[None, :])
    for theta in rng.uniform([-2.0, -3.0, -8.0], [3.0, 1.0, 1.0], size=(5, 3)):
        lml, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
        nlml, ngrad = gp._neg_log_marginal_likelihood(theta, dist, y)
        assert nlml == pytest.approx(-lml, rel=1e-9)
        np.testing.assert_allclose(ngrad, -grad, rtol=1e-7, atol=1e-9)


# --- the empirical-Bayes fit: Newton's method on scikit-learn's objective ------------------------

def _scaled_curve(seed: int, n: int):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 1.0, n))
    y = np.log1p(5.0 * x) + rng.uniform(0.01, 0.3) * rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    return x, y, np.abs(x[:, None] - x[None, :])


def test_newton_terms_equal_the_objective_and_its_finite_difference_hessian():
    for seed, n in ((0, 6), (1, 25), (2, 60)):
        _, y, dist = _scaled_curve(seed, n)
        for theta in (np.array([0.3, -1.2, -3.0]), np.array([-1.0, 0.4, -0.5])):
            f, g, h = gp._nlml_newton_terms(theta, dist, y)
            f_ref, g_ref = gp._neg_log_marginal_likelihood(theta, dist, y)
            assert f == pytest.approx(f_ref, rel=1e-12)
            np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-10)
            eps = 1e-6
            fd = np.column_stack([(gp._nlml_newton_terms(theta + e, dist, y)[1]
                                   - gp._nlml_newton_terms(theta - e, dist, y)[1]) / (2 * eps)
                                  for e in np.eye(3) * eps])
            np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-5 * np.abs(h).max())
            np.testing.assert_array_equal(h, h.T)


def test_newton_finds_the_maximum_lbfgsb_finds_or_a_better_one():
    for seed in range(12):
        x, y, dist = _scaled_curve(seed, 8 + 4 * seed)
        ls_min = float(np.median(np.diff(x)))
        bounds = np.log([gp._AMPLITUDE_BOUNDS, (ls_min, gp._LENGTH_SCALE_MAX), gp._NOISE_BOUNDS])
        start = gp._initial_theta(y, bounds)
        theta = gp._empirical_bayes(dist, y, bounds)
        ref = minimize(gp._neg_log_marginal_likelihood, start, args=(dist, y), jac=True,
                       method="L-BFGS-B", bounds=bounds)
        assert np.all(theta >= bounds[:, 0]) and np.all(theta <= bounds[:, 1])
        got = gp._neg_log_marginal_likelihood(theta, dist, y)[0]
        assert got <= ref.fun + 1e-3, (seed, got, ref.fun)
        # a stationary point, up to the coordinates held at a bound
        g = gp._neg_log_marginal_likelihood(theta, dist, y)[1]
        inside = (theta > bounds[:, 0] + 1e-9) & (theta < bounds[:, 1] - 1e-9)
        assert np.all(np.abs(g[inside]) < 0.05), (seed, g, inside)


def test_fit_is_scikit_learns_gp_posterior_mean_with_the_fitted_hyperparameters():
    rng = np.random.default_rng(5)
    x = 100.0 * np.arange(1, 31)
    y = np.log1p(x / 800.0) + 0.05 * rng.normal(size=30)
    xu, target = (x - x.min()) / np.ptp(x), (y - y.mean()) / y.std()
    bounds = np.log([gp._AMPLITUDE_BOUNDS, (float(np.median(np.diff(xu))), gp._LENGTH_SCALE_MAX),
                     gp._NOISE_BOUNDS])
    amplitude, length_scale, noise = np.exp(gp._empirical_bayes(np.abs(xu[:, None] - xu[None, :]), target,
                                                                bounds))
    kernel = ConstantKernel(amplitude, "fixed") * Matern(length_scale, "fixed", nu=2.5) + WhiteKernel(noise, "fixed")
    model = GaussianProcessRegressor(kernel, optimizer=None, alpha=gp._JITTER).fit(xu[:, None], target)
    np.testing.assert_allclose(gp.fit(x, y), model.predict(xu[:, None]) * y.std() + y.mean(), rtol=0, atol=1e-9)
    assert 0.0 < noise < 1.0 and length_scale >= bounds[1, 0] - 1e-12  # a fit, not a bound or an interpolation


def test_fit_is_a_pure_function_of_the_curve():
    rng = np.random.default_rng(9)
    x = 10.0 * np.arange(40)
    y = np.sqrt(x) + rng.normal(size=40)
    first = gp.fit(x, y)
    gp.fit(x[:25], y[:25] + 1.0)  # other fits in between change nothing
    np.testing.assert_array_equal(gp.fit(x.copy(), y.copy()), first)


def test_fit_degenerate_inputs():
    assert gp.fit([], []).shape == (0,)
    np.testing.assert_array_equal(gp.fit([1.0, 2.0], [7, 9]), [7.0, 9.0])
    np.testing.assert_array_equal(gp.fit(np.arange(6.0), np.full(6, 4.2)), np.full(6, 4.2))
    assert np.all(np.isnan(gp.fit([1.0, 2.0, 3.0], [np.nan, np.inf, np.nan])))
    with pytest.raises(ValueError, match="equal length"):
        gp.fit([1.0, 2.0, 3.0], [1.0, 2.0])
