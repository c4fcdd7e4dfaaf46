"""Empirical-Bayes GP smoothing of one training curve (FIRE PBT, paper 3.1.1, step 1).

The paper smooths each curve with "a Gaussian Process with a Matérn 5/2 kernel
and uses empirical Bayes to fit its hyperparameters". :func:`fit` is that step
and the only public call: ``fit(x, y)`` returns the GP posterior mean of the
curve at its own steps. Everything else here is the likelihood maximisation
behind it (private). :func:`rlpop.curves.smooth` validates a curve and calls
:func:`fit`; the comparisons in :mod:`rlpop.curves` never look inside.

The model: kernel ``ConstantKernel * Matern(nu=2.5)`` plus Gaussian observation
noise (amplitude, length scale, noise variance), i.e. scikit-learn's
``ConstantKernel * Matern(nu=2.5) + WhiteKernel``, fitted to the curve with
``x`` mapped to ``[0, 1]`` and ``y`` standardised (mean 0, std 1), the
hyperparameters bounded (log space) and chosen by maximising the log marginal
likelihood.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_solve
from scipy.linalg.lapack import dpotrf, dpotri
from scipy.optimize import minimize
from sklearn import config_context as sklearn_config
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern
from threadpoolctl import ThreadpoolController

__all__ = ["fit"]

# GP hyperparameter bounds, in the scaled coordinates fit() works in
# (x in [0, 1], y standardised to mean 0, std 1).
_AMPLITUDE_BOUNDS = (1e-3, 1e3)
_LENGTH_SCALE_MAX = 1e2
_NOISE_BOUNDS = (1e-6, 1e1)
#: GaussianProcessRegressor's default ``alpha`` (diagonal jitter), used as is
_JITTER = 1e-10
_SQRT5 = float(np.sqrt(5.0))
_LOG_2PI = float(np.log(2.0 * np.pi))
# Newton's method for the marginal likelihood (see _newton)
_NEWTON_GTOL = 1e-5
_NEWTON_DECREMENT = 1e-7
_NEWTON_LAST_STEP = 1e-4
_NEWTON_MAX_STEP = 2.0
_NEWTON_MAX_ITER = 30
_LOG_AMPLITUDE_BOUNDS = (math.log(_AMPLITUDE_BOUNDS[0]), math.log(_AMPLITUDE_BOUNDS[1]))
_LOG_LENGTH_SCALE_MAX = math.log(_LENGTH_SCALE_MAX)
_LOG_NOISE_BOUNDS = (math.log(_NOISE_BOUNDS[0]), math.log(_NOISE_BOUNDS[1]))
# The GP matrices are small: BLAS threads only add contention, so fits run
# single-threaded. Measured on a busy 2-core box (load ~5, OpenBLAS 0.3.30/31,
# benchmarks/gp_fit.py): from 17 points on, OpenBLAS's threads make a fit 5-20x
# slower in wall and CPU time (e.g. 20 points: 80-160 ms instead of 8-16 ms);
# up to 16 points it does not start them, and the limit (~50 us) would only
# cost. (The threshold was 64 before; outputs agree to ~1e-12 of y's std.)
_BLAS = ThreadpoolController()
_BLAS_THREADED_FROM = 17


def single_threaded_blas(n: int) -> contextlib.AbstractContextManager:
    """BLAS limited to one thread for linear algebra on ``n``-row matrices (a no-op for small ``n``); also
    what PB2's GP uses."""
    return _BLAS.limit(limits=1, user_api="blas") if n >= _BLAS_THREADED_FROM else contextlib.nullcontext()


def _interpolate(x: np.ndarray, xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
    """Piecewise-linear fill of the curve at ``x`` from its finite points ``(xf, yf)``."""
    order = np.argsort(xf, kind="stable")
    return np.interp(x, xf[order], yf[order])


def _neg_log_marginal_likelihood(
    theta: np.ndarray, dist: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient for the kernel of :func:`fit`.

    ``theta = log([amplitude, length_scale, noise])`` (scikit-learn's ``theta``
    order for ``ConstantKernel * Matern(nu=2.5) + WhiteKernel``), ``dist`` the
    pairwise ``|x_i - x_j|``. Rasmussen & Williams (2006) eq. 2.30 and 5.9:
    ``log p(y) = -y'K^-1 y / 2 - log|K| / 2 - n log(2 pi) / 2`` and
    ``d log p / d theta_j = tr((a a' - K^-1) dK/dtheta_j) / 2`` with
    ``a = K^-1 y``. With ``u = sqrt(5) d / l`` the Matérn 5/2 correlation is
    ``(1 + u + u^2/3) exp(-u)`` and its log-length-scale derivative
    ``u^2 (1 + u) exp(-u) / 3``. Equal to scikit-learn's
    ``GaussianProcessRegressor.log_marginal_likelihood(theta, eval_gradient=True)``
    (negated; tested), about 8x faster because it skips the kernel objects.
    """
    amplitude, length_scale, noise = np.exp(theta)
    n = y.size
    u = _SQRT5 * dist / length_scale
    decay = np.exp(-u)
    k_matern = amplitude * (1.0 + u + u * u / 3.0) * decay
    k = k_matern.copy()
    k.flat[:: n + 1] += noise + _JITTER
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros(3)
    a = cho_solve((chol, True), y, check_finite=False)
    lml = -0.5 * float(y @ a) - float(np.log(np.diag(chol)).sum()) - 0.5 * n * np.log(2.0 * np.pi)
    w = np.outer(a, a) - cho_solve((chol, True), np.eye(n), check_finite=False)
    d_length = amplitude * u * u * (1.0 + u) * decay / 3.0
    grad = 0.5 * np.array([np.sum(w * k_matern), np.sum(w * d_length), noise * np.trace(w)])
    return -lml, -grad


def _nlml_newton_terms(
    theta: np.ndarray, dist: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Negative log marginal likelihood, its gradient and its Hessian in ``theta``.

    Same objective as :func:`_neg_log_marginal_likelihood` (tested equal), plus
    the exact Hessian for Newton's method. With ``K_i = dK/dtheta_i``,
    ``K_ij = d2K/dtheta_i dtheta_j``, ``a = K^-1 y`` and ``L = log p(y)``::

        dL/di     = a'K_i a / 2 - tr(K^-1 K_i) / 2
        d2L/di dj = -a'K_i K^-1 K_j a + a'K_ij a / 2
                    + tr(K^-1 K_i K^-1 K_j) / 2 - tr(K^-1 K_ij) / 2

    For ``K = A R(u) + (s + jitter) I``: ``K_A = A R``, ``K_l = A u^2 (1 + u)
    exp(-u) / 3``, ``K_s = s I``; second derivatives ``K_AA = K_A``,
    ``K_Al = K_l``, ``K_ll = A u^2 (u^2 - 2u - 2) exp(-u) / 3``, ``K_ss = K_s``,
    the others 0. Since ``K^-1 K_A = I - (s + jitter) K^-1`` and ``K^-1`` is
    symmetric, one ``O(n^3)`` product (``K^-1 K_l``) besides the Cholesky
    factor and the inverse gives every term. Returns ``(inf, None, None)``
    when ``K`` is not positive definite.
    """
    amplitude, length_scale, noise = np.exp(theta).tolist()
    n = y.size
    c = noise + _JITTER
    u = dist * (_SQRT5 / length_scale)
    decay = np.exp(-u)
    ud = u * decay                          # u e^-u
    k = ud * u
    k *= 1.0 / 3.0
    k += ud
    k += decay
    k *= amplitude                          # A (1 + u + u^2/3) e^-u
    k.flat[:: n + 1] += c
    chol, info = dpotrf(k, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        return np.inf, None, None
    logdet_half = float(np.log(chol.diagonal()).sum())
    p, info = dpotri(chol, lower=1, overwrite_c=1)
    if info != 0:
        return np.inf, None, None
    p += np.tril(p, -1).T  # dpotri fills the lower triangle; the upper one holds zeros (clean=1)
    k_len = ud * u
    k_len *= amplitude / 3.0                # A u^2 e^-u / 3
    poly = u - 2.0
    poly *= u
    poly -= 2.0
    k_len2 = k_len * poly                   # A u^2 (u^2 - 2u - 2) e^-u / 3
    k_len += k_len * u                      # A u^2 (1 + u) e^-u / 3
    m_len = p @ k_len
    a = p @ y
    b = p @ a
    v_len = k_len @ a
    w_len = p @ v_len
    # the vector products, as one small Gram matrix: rows y, a, b, K_l a, K^-1 K_l a, K_ll a; columns y, a, b
    vecs = np.stack([y, a, b, v_len, w_len, k_len2 @ a])
    gram = (vecs @ vecs[:3].T).tolist()
    ya, aa, ab = gram[1][0], gram[1][1], gram[2][1]
    a_vlen, v_len_b = gram[3][1], gram[3][2]
    y_wlen, a_wlen = gram[4][0], gram[4][1]
    a_klen2_a = gram[5][1]
    v_len_w_len = float(v_len @ w_len)
    # the traces tr(K^-1 M) = sum(K^-1 * M) (K^-1 symmetric) for M = K^-1, K_l, K^-1 K_l, K_ll, as one product
    mats = np.stack([p, k_len, m_len, k_len2]).reshape(4, -1)
    pp, tr_len, tr_pm, tr_len2 = (mats @ mats[0]).tolist()
    tr_p = float(p.trace())
    tr_mm = float(np.einsum("ij,ji->", m_len, m_len))
    nll = 0.5 * ya + logdet_half + 0.5 * n * _LOG_2PI
    v_amp_a = ya - c * aa
    tr_amp = n - c * tr_p
    grad = [0.5 * (v_amp_a - tr_amp), 0.5 * (a_vlen - tr_len), 0.5 * noise * (aa - tr_p)]
    vw_aa = ya - 2.0 * c * aa + c * c * ab
    h00 = -vw_aa + 0.5 * v_amp_a + 0.5 * (n - 2.0 * c * tr_p + c * c * pp) - 0.5 * tr_amp
    h01 = -(y_wlen - c * a_wlen) + 0.5 * a_vlen + 0.5 * (tr_len - c * tr_pm) - 0.5 * tr_len
    h11 = -v_len_w_len + 0.5 * a_klen2_a + 0.5 * tr_mm - 0.5 * tr_len2
    h02 = -noise * (aa - c * ab) + 0.5 * noise * (tr_p - c * pp)
    h12 = -noise * v_len_b + 0.5 * noise * tr_pm
    h22 = -noise * noise * ab + 0.5 * noise * aa + 0.5 * noise * noise * pp - 0.5 * noise * tr_p
    return nll, -np.array(grad), -np.array([[h00, h01, h02], [h01, h11, h12], [h02, h12, h22]])


def _newton(
    theta0: np.ndarray, dist: np.ndarray, y: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, float] | None:
    """Maximise the marginal likelihood by projected Newton steps from ``theta0``.

    Exact second derivatives (:func:`_nlml_newton_terms`) converge in ~6
    likelihood evaluations from :func:`_initial_theta` on FIRE toy curves,
    where L-BFGS-B, which starts from a gradient step, needs ~20. Each step:
    parameters at a bound whose gradient pushes outwards are held; on the
    others, ``p = -H^-1 g`` (:func:`_newton_step`; ``H`` made positive
    definite where it is not), at most ``_NEWTON_MAX_STEP`` in any
    log-coordinate, then halved until the Armijo condition holds (the point is
    clipped into the bounds). Stops when the projected gradient is below
    ``_NEWTON_GTOL`` (L-BFGS-B's default ``pgtol``) or the predicted decrease
    ``-g'p / 2`` below ``_NEWTON_DECREMENT``; below ``_NEWTON_LAST_STEP``, with
    ``H`` definite, it takes that last Newton step without evaluating the
    likelihood after it (measured: 1.2 evaluations fewer a fit, at most 0.003
    nats from the exact maximum). Returns ``(theta, nll)``, or ``None`` when it
    does not converge in ``_NEWTON_MAX_ITER`` steps or meets a non-finite
    value (the caller falls back to L-BFGS-B).
    """
    lo, hi = bounds[:, 0].tolist(), bounds[:, 1].tolist()
    theta = [min(max(t, l), u) for t, l, u in zip(np.asarray(theta0, dtype=float).tolist(), lo, hi)]
    f, g, h = _nlml_newton_terms(np.array(theta), dist, y)
    if not np.isfinite(f):
        return None
    for _ in range(_NEWTON_MAX_ITER):
        gl = g.tolist()
        free = [i for i in range(3) if not ((theta[i] <= lo[i] and gl[i] > 0) or (theta[i] >= hi[i] and gl[i] < 0))]
        if not free or max(abs(gl[i]) for i in free) < _NEWTON_GTOL:
            return np.array(theta), f
        step, definite = _newton_step(h, g, free)
        decrement = -0.5 * sum(gl[i] * step[i] for i in range(3))
        if decrement < _NEWTON_DECREMENT:
            return np.array(theta), f
        if definite and decrement < _NEWTON_LAST_STEP:
            # close to the maximum of a locally concave likelihood: one more Newton step leaves an
            # error of order decrement^2, so take it without evaluating the likelihood there
            last = [min(max(theta[i] + step[i], lo[i]), hi[i]) for i in range(3)]
            return np.array(last), f - decrement
        scale = min(1.0, _NEWTON_MAX_STEP / max(abs(v) for v in step))
        t = scale
        while True:
            trial = [min(max(theta[i] + t * step[i], lo[i]), hi[i]) for i in range(3)]
            f_new, g_new, h_new = _nlml_newton_terms(np.array(trial), dist, y)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * sum(gl[i] * (trial[i] - theta[i]) for i in range(3)):
                break
            t *= 0.5
            if t < 1e-3 * scale:
                return None
        theta, f, g, h = trial, f_new, g_new, h_new
    return None


def _newton_step(h: np.ndarray, g: np.ndarray, free: list[int]) -> tuple[list[float], bool]:
    """``-H^-1 g`` on the ``free`` coordinates (0 elsewhere), ``H`` made positive definite;
    and whether ``H`` already was (a pure Newton step).

    A Cholesky factorisation of the free block (at most 3x3, in plain Python:
    numpy's call overhead would cost more than the arithmetic) when it is
    positive definite, as near a maximum; otherwise the eigenvalues are
    replaced by their absolute values (floored), which keeps a descent
    direction where ``H`` is indefinite.
    """
    hf = [[float(h[i, j]) for j in free] for i in free]
    gf = [float(g[i]) for i in free]
    m = len(free)
    chol = [[0.0] * m for _ in range(m)]
    positive = True
    for i in range(m):
        for j in range(i + 1):
            acc = hf[i][j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            if i == j:
                if acc <= 1e-12 * max(1.0, abs(hf[i][i])):
                    positive = False
                    break
                chol[i][i] = math.sqrt(acc)
            else:
                chol[i][j] = acc / chol[j][j]
        if not positive:
            break
    if positive:
        z = [0.0] * m
        for i in range(m):
            z[i] = (-gf[i] - sum(chol[i][k] * z[k] for k in range(i))) / chol[i][i]
        sf = [0.0] * m
        for i in reversed(range(m)):
            sf[i] = (z[i] - sum(chol[k][i] * sf[k] for k in range(i + 1, m))) / chol[i][i]
    else:
        eig, vec = np.linalg.eigh(np.array(hf))
        eig = np.maximum(np.abs(eig), 1e-8 * max(1.0, float(np.max(np.abs(eig)))))
        sf = (-vec @ ((vec.T @ np.array(gf)) / eig)).tolist()
    step = [0.0, 0.0, 0.0]
    for k, i in enumerate(free):
        step[i] = sf[k]
    return step, positive


def _initial_theta(y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Where the likelihood maximisation starts, from the (standardised) curve itself.

    Noise variance from second differences: for white noise of variance
    ``s``, ``E[(y[i+1] - 2 y[i] + y[i-1])^2] = 6 s`` (a smooth trend adds
    little); amplitude ``1 - s`` (the rest of the unit variance); length scale
    0.3 of the span. Clipped into ``bounds``. Measured on FIRE toy curves:
    ~25% fewer Newton steps than a fixed start, same maxima.
    """
    if y.size >= 3:
        second = np.diff(y, 2)
        noise = min(max(float(second @ second) / (6.0 * second.size), 1e-6), 1.0)
    else:
        noise = 0.1
    start = (math.log(max(1.0 - noise, 1e-3)), math.log(0.3), math.log(noise))
    lo, hi = bounds[:, 0].tolist(), bounds[:, 1].tolist()
    return np.array([min(max(v, l), u) for v, l, u in zip(start, lo, hi)])


def _empirical_bayes(dist: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Empirical Bayes: the hyperparameters ``theta`` that maximise the marginal likelihood.

    The objective is scikit-learn's ``GaussianProcessRegressor.log_marginal_likelihood``
    for the kernel of :func:`fit` (computed by :func:`_nlml_newton_terms`,
    tested equal), maximised within ``bounds`` (log space, one row per
    hyperparameter) by Newton's method (:func:`_newton`) from
    :func:`_initial_theta`, one run, no restarts; L-BFGS-B from the same start
    where Newton fails. Deterministic: the same curve always gets the same
    answer.
    """
    theta0 = _initial_theta(y, bounds)
    found = _newton(theta0, dist, y, bounds)
    if found is not None:
        return found[0]
    return _lbfgsb(dist, y, bounds, theta0)


def _lbfgsb(dist: np.ndarray, y: np.ndarray, bounds: np.ndarray, theta0: np.ndarray | None = None,
            analytic_gradient: bool = True) -> np.ndarray:
    """The same maximisation by scipy's L-BFGS-B (from :func:`_initial_theta` unless ``theta0`` is given):
    :func:`_empirical_bayes`'s fallback, and the reference benchmarks/gp_fit.py times it against.
    ``analytic_gradient=False``: finite-difference gradients (scipy's default ``2-point``)."""
    if theta0 is None:
        theta0 = _initial_theta(y, bounds)
    if analytic_gradient:
        result = minimize(_neg_log_marginal_likelihood, theta0, args=(dist, y), jac=True, method="L-BFGS-B",
                          bounds=bounds)
    else:
        result = minimize(lambda t: _neg_log_marginal_likelihood(t, dist, y)[0], theta0, method="L-BFGS-B",
                          bounds=bounds)
    return result.x if np.isfinite(result.fun) else theta0


def fit(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """GP posterior mean of a training curve at its own steps (paper 3.1.1, step 1).

    The paper fits "a Gaussian Process with a Matérn 5/2 kernel and uses
    empirical Bayes to fit its hyperparameters". Here the model is a GP with
    kernel ``ConstantKernel * Matern(nu=2.5)`` plus Gaussian observation noise
    (amplitude, length scale, noise variance: the same GP as
    ``ConstantKernel * Matern(nu=2.5) + WhiteKernel``). Empirical Bayes: all
    three hyperparameters maximise the log marginal likelihood within their
    bounds (:func:`_empirical_bayes`: Newton's method with the exact gradient
    and Hessian of scikit-learn's own objective, one run from a starting point
    estimated from the curve, no restarts, L-BFGS-B as the fallback).
    scikit-learn's ``GaussianProcessRegressor`` with those hyperparameters (the
    noise as its ``alpha``) then conditions on the curve and gives the
    posterior mean. (scikit-learn's own optimizer loop costs ~0.7 ms a
    likelihood evaluation in kernel bookkeeping, and passing an ``optimizer``
    hook adds ~0.3 ms a fit; a vectorised numpy objective and
    fixed-hyperparameter kernels avoid both.)
    For conditioning and speed the fit is done on ``x -> (x - min x) / span(x)``
    and standardised ``y``; the length scale is bounded below by the median
    point spacing (a shorter one would just interpolate the noise); the answer
    is mapped back to ``y`` units. A pure function of ``(x, y)``: callers may
    cache it by the data.

    Defined answers, never an exception for degenerate data:

    - 0 points: an empty array.
    - non-finite ``y`` points are left out of the fit; the mean is still
      predicted at every ``x``. No finite point at all: all-NaN.
    - fewer than 3 finite points, or a flat curve (std 0): ``y`` itself as a
      float array (non-finite points filled by linear interpolation of the
      finite ones), since there is nothing to smooth.
    - if the GP fit fails numerically, the same raw answer as above.

    BLAS runs single-threaded during fits of 17 points or more (small
    matrices; extra threads only contend).
    """
    return _fit(x, y, _empirical_bayes)


def _fit(x: ArrayLike, y: ArrayLike, optimise) -> np.ndarray:
    """:func:`fit` with the hyperparameter search ``optimise(dist, y, bounds) -> theta`` as a parameter
    (:func:`_empirical_bayes` in :func:`fit`; benchmarks/gp_fit.py swaps in :func:`_lbfgsb`)."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ValueError(f"gp.fit: x and y must be 1-D of equal length (got shapes {xs.shape} and {ys.shape})")
    if xs.size == 0:
        return np.empty(0)
    finite = np.isfinite(ys)
    xf, yf = xs[finite], ys[finite]
    if yf.size == 0:
        return np.full(xs.shape, np.nan)

    def raw() -> np.ndarray:
        return ys.copy() if finite.all() else _interpolate(xs, xf, yf)

    if yf.size < 3:
        return raw()
    mu, sd = float(yf.mean()), float(yf.std())
    if sd <= 1e-12 * max(1.0, abs(float(yf.max())), abs(float(yf.min()))):
        return raw()  # flat: nothing to smooth (std 0 up to rounding)
    x0 = float(xf.min())
    span = (float(xf.max()) - x0) or 1.0
    xu = (xf - x0) / span
    spacing = np.diff(np.sort(xu))
    spacing.sort()
    half = spacing.size // 2  # np.median of the spacing, without its overhead
    median = float(spacing[half]) if spacing.size % 2 else float(spacing[half - 1] + spacing[half]) / 2.0
    ls_min = min(max(median, 1e-3), 0.5)
    target = (yf - mu) / sd
    bounds = np.array([_LOG_AMPLITUDE_BOUNDS, (math.log(ls_min), _LOG_LENGTH_SCALE_MAX), _LOG_NOISE_BOUNDS])
    try:
        with single_threaded_blas(yf.size), sklearn_config(assume_finite=True, skip_parameter_validation=True):
            theta = optimise(np.abs(xu[:, None] - xu[None, :]), target, bounds)
            amplitude, length_scale, noise = np.exp(theta).tolist()
            # the noise as GaussianProcessRegressor's alpha ("the variance of additional Gaussian
            # measurement noise on the training observations"): the same model as "+ WhiteKernel"
            # (bitwise the same mean at x), with less kernel bookkeeping
            kernel = ConstantKernel(amplitude, "fixed") * Matern(length_scale, "fixed", nu=2.5)
            gp = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=False, alpha=noise + _JITTER,
                                          copy_X_train=False)
            gp.fit(xu[:, None], target)
            # GaussianProcessRegressor.predict's mean k(x*, X) K^-1 y, from the fitted model's
            # alpha_ = K^-1 y: at the training points k(X, X) = K - alpha I, so it is y - alpha alpha_
            if finite.all():
                mean = target - (noise + _JITTER) * gp.alpha_
            else:  # also at the points left out of the fit
                mean = gp.kernel_(((xs - x0) / span)[:, None], gp.X_train_) @ gp.alpha_
    except (np.linalg.LinAlgError, ValueError):
        return raw()
    out = np.asarray(mean, dtype=float) * sd + mu
    return out if np.isfinite(out).all() else raw()
