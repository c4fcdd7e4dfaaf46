"""FIRE PBT curve math (Dalibard & Jaderberg 2020, sections 3.1.1 and 3.2).

Pure functions on arrays: GP smoothing of a training curve, the overlapping
sections of two curves, ``best_score_diff`` (with the penalised-delta sweep for
curves that do not overlap), the one-sided binomial test, and the evaluator
stopping threshold. No state: callers that compare the same curve many times
cache :func:`smooth` and pass the result as ``yhat_*``.

A curve is ``(x, y)``: ``x`` the actor steps at which Q was measured, ``y`` the
measured Q (higher is better). Non-finite ``y`` points carry no information:
:func:`smooth` leaves them out of the fit (and still predicts there), and the
comparisons drop them (``x``, ``y`` and ``yhat`` together) before anything
else. Non-finite ``x`` or mismatched lengths are caller bugs and raise
``ValueError``.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_solve
from scipy.linalg.lapack import dpotrf, dpotri
from scipy.optimize import minimize
from scipy.stats import binomtest
from sklearn import config_context as sklearn_config
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern
from threadpoolctl import ThreadpoolController

__all__ = [
    "Comparison",
    "best_score_diff",
    "binom_test",
    "compare",
    "overlap_sections",
    "smooth",
    "stop_threshold",
]

#: number of penalties tried by the penalised-delta sweep (paper 3.1.1, special case)
DELTA_GRID = 32
_DELTA_STEPS = np.linspace(0.0, 1.0, DELTA_GRID)

# GP hyperparameter bounds, in the scaled coordinates smooth() fits in
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
# The GP matrices are small: BLAS threads only add contention (5x slower
# measured on a busy 2-core box), so fits run single-threaded. Below
# _BLAS_THREADED_FROM points OpenBLAS does not start its threads anyway (its
# multithreading thresholds), and switching them off costs more than the fit's
# own linear algebra.
_BLAS = ThreadpoolController()
_BLAS_THREADED_FROM = 64


def _single_threaded_blas(n: int) -> contextlib.AbstractContextManager:
    """BLAS limited to one thread for a fit on ``n`` points (a no-op for small ``n``)."""
    return _BLAS.limit(limits=1, user_api="blas") if n >= _BLAS_THREADED_FROM else contextlib.nullcontext()


def _curve(x: ArrayLike, y: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve: 1-D float arrays of equal length, finite ``x``."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.ndim != 1 or ys.ndim != 1:
        raise ValueError(
            f"curve {name}: x and y must be 1-D sequences (got shapes {xs.shape} and "
            f"{ys.shape}); pass one value per evaluation point"
        )
    if xs.shape != ys.shape:
        raise ValueError(
            f"curve {name}: x has {xs.size} points but y has {ys.size}; pass one step per Q value"
        )
    if not np.isfinite(xs).all():
        raise ValueError(f"curve {name}: x contains NaN/inf; x must be the (finite) actor steps")
    return xs, ys


def _interpolate(x: np.ndarray, xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
    """Piecewise-linear fill of the curve at ``x`` from its finite points ``(xf, yf)``."""
    order = np.argsort(xf, kind="stable")
    return np.interp(x, xf[order], yf[order])


def _neg_log_marginal_likelihood(
    theta: np.ndarray, dist: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient for the kernel of :func:`smooth`.

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
    for the kernel of :func:`smooth` (computed by :func:`_nlml_newton_terms`,
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
    result = minimize(_neg_log_marginal_likelihood, theta0, args=(dist, y), jac=True, method="L-BFGS-B",
                      bounds=bounds)
    return result.x if np.isfinite(result.fun) else theta0


def smooth(x: ArrayLike, y: ArrayLike) -> np.ndarray:
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

    BLAS runs single-threaded during fits of 64 points or more (small
    matrices; extra threads only contend).
    """
    xs, ys = _curve(x, y, "(x, y)")
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
        with _single_threaded_blas(yf.size), sklearn_config(assume_finite=True, skip_parameter_validation=True):
            theta = _empirical_bayes(np.abs(xu[:, None] - xu[None, :]), target, bounds)
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


def overlap_sections(yhat_eta: ArrayLike, yhat_kappa: ArrayLike) -> tuple[int, int, int] | None:
    """Starts ``(r, s)`` and length ``n`` of the overlapping sections (paper 3.1.1, steps 2-3).

    Works on smoothed curves. The curve with the higher smoothed start defines
    the level; the other curve's section starts at its first index whose
    smoothed value is ``>=`` that level, the higher curve's at index 0 (a tie
    at the start: both at 0). ``r`` indexes ``yhat_eta``, ``s`` ``yhat_kappa``.

    ``n = min(len_eta - r, len_kappa - s)``: the paper's formula prints
    ``max``, but its text ("the maximum number of steps for which *both* curves
    have evaluations past their starting point") and Figure 3 ("the right curve
    has fewer steps past its starting point and therefore constrains the
    length") mean ``min``; only ``min`` keeps both sections inside their curves.

    Returns ``None`` when the lower-start curve never reaches the level (no
    overlap) or either curve is empty.
    """
    he = np.asarray(yhat_eta, dtype=float)
    hk = np.asarray(yhat_kappa, dtype=float)
    for name, h in (("yhat_eta", he), ("yhat_kappa", hk)):
        if h.ndim != 1:
            raise ValueError(f"{name} must be a 1-D smoothed curve (got shape {h.shape})")
        if not np.all(np.isfinite(h)):
            raise ValueError(
                f"{name} contains NaN/inf; pass smooth() output of the curve's finite points"
            )
    return _overlap(he, hk)


def _overlap(he: np.ndarray, hk: np.ndarray) -> tuple[int, int, int] | None:
    """:func:`overlap_sections` on validated 1-D finite float arrays."""
    if he.size == 0 or hk.size == 0:
        return None
    r = s = 0
    start_e, start_k = float(he[0]), float(hk[0])
    if start_e > start_k:
        reached = hk >= start_e
        s = int(reached.argmax())  # the first index that reaches the level, if any does
        if not reached[s]:
            return None
    elif start_k > start_e:
        reached = he >= start_k
        r = int(reached.argmax())
        if not reached[r]:
            return None
    return r, s, min(he.size - r, hk.size - s)


def _prepared(
    x: ArrayLike, y: ArrayLike, yhat: ArrayLike | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Finite points of a curve and their smoothed values (``yhat`` given or fitted here)."""
    xs, ys = _curve(x, y, name)
    if yhat is None:
        keep = np.isfinite(ys)
        xs, ys = xs[keep], ys[keep]
        return ys, smooth(xs, ys)
    hs = np.asarray(yhat, dtype=float)
    if hs.shape != ys.shape:
        raise ValueError(
            f"yhat_{name} has shape {hs.shape} but y_{name} has {ys.shape}; pass smooth(x_{name}, "
            f"y_{name}) for the same curve"
        )
    keep = np.isfinite(ys)
    if keep.all():  # the usual case: nothing to drop
        if not np.isfinite(hs).all():
            raise ValueError(
                f"yhat_{name} contains NaN/inf where y_{name} is finite; pass smooth(x_{name}, y_{name})"
            )
        return ys, hs
    if not np.all(np.isfinite(hs[keep])):
        raise ValueError(
            f"yhat_{name} contains NaN/inf where y_{name} is finite; pass smooth(x_{name}, y_{name})"
        )
    return ys[keep], hs[keep]


def _section_diff(
    y_eta: np.ndarray, h_eta: np.ndarray, y_kappa: np.ndarray, h_kappa: np.ndarray
) -> float | None:
    """Paper 3.1.1 steps 2-4: raw-max difference over the overlap, ``None`` if none."""
    sections = _overlap(h_eta, h_kappa)
    if sections is None:
        return None
    r, s, n = sections
    return float(y_eta[r : r + n].max() - y_kappa[s : s + n].max())


def _penalised_sweep(y_hi: np.ndarray, h_hi: np.ndarray, y_lo: np.ndarray, h_lo: np.ndarray) -> float:
    """Paper 3.1.1, special case: best positive score of ``penalised_delta(hi)`` vs ``lo``, else 0.

    ``delta`` runs over ``DELTA_GRID`` evenly spaced values of
    ``[min y_hi - max y_lo, min y_hi - min y_lo]`` (the paper's range). The
    penalised curve is ``(x, y - delta)``; its smoothed curve is taken as
    ``yhat - delta`` rather than refitted: with a standardised target and a
    zero-mean GP, the posterior mean is shift-equivariant, so this *is* the
    refit, minus the cost. The sections' starts are found for every penalty at
    once (one comparison matrix per curve); the raw maxima are then taken once
    per distinct section ``(r, s, n)`` -- a few, since neighbouring penalties
    mostly share their sections -- in plain Python (numpy's per-call overhead
    dominates on curves this short).
    """
    yh, yl = y_hi.tolist(), y_lo.tolist()
    lo_max, lo_min, hi_min = max(yl), min(yl), min(yh)
    deltas = (hi_min - lo_max) + (lo_max - lo_min) * _DELTA_STEPS
    shifted = h_hi[None, :] - deltas[:, None]  # smoothed penalised curves, one row per delta
    level = float(h_lo[0])
    hi_reaches = shifted >= level  # lo starts higher: hi's section starts where it reaches lo's start
    lo_reaches = h_lo[None, :] >= shifted[:, :1]  # hi starts higher: lo's section starts where it reaches
    r_first, r_any = hi_reaches.argmax(axis=1).tolist(), hi_reaches.any(axis=1).tolist()
    s_first, s_any = lo_reaches.argmax(axis=1).tolist(), lo_reaches.any(axis=1).tolist()
    starts, penalties = shifted[:, 0].tolist(), deltas.tolist()
    maxima: dict[tuple[int, int, int], tuple[float, float]] = {}
    best = 0.0
    for k, delta in enumerate(penalties):
        if starts[k] < level:
            if not r_any[k]:
                continue  # never reaches lo's start: no overlap for this penalty
            r, s = r_first[k], 0
        elif starts[k] > level:
            if not s_any[k]:
                continue
            r, s = 0, s_first[k]
        else:
            r = s = 0
        n = min(len(yh) - r, len(yl) - s)
        key = (r, s, n)
        if key not in maxima:
            maxima[key] = (max(yh[r : r + n]), max(yl[s : s + n]))
        top_hi, top_lo = maxima[key]
        best = max(best, top_hi - delta - top_lo)
    return best


def _score(y_eta: np.ndarray, h_eta: np.ndarray, y_kappa: np.ndarray, h_kappa: np.ndarray) -> float:
    """best_score_diff on prepared (finite, smoothed) curves."""
    if y_eta.size == 0 or y_kappa.size == 0:
        return 0.0
    direct = _section_diff(y_eta, h_eta, y_kappa, h_kappa)
    if direct is not None:
        return direct
    # No overlap: the higher-start curve was never reached. It is "strictly
    # above" when it lies above the other curve everywhere, judged on the
    # smoothed curves (robust to noise) or on the raw ones (the paper's test).
    eta_hi = h_eta[0] > h_kappa[0]
    y_hi, h_hi, y_lo, h_lo = (y_eta, h_eta, y_kappa, h_kappa) if eta_hi else (y_kappa, h_kappa, y_eta, h_eta)
    strictly_above = h_hi.min() > h_lo.max() or y_hi.min() > y_lo.max()
    if not strictly_above:
        return 0.0
    swept = _penalised_sweep(y_hi, h_hi, y_lo, h_lo)
    return swept if eta_hi else -swept


def best_score_diff(
    x_eta: ArrayLike,
    y_eta: ArrayLike,
    x_kappa: ArrayLike,
    y_kappa: ArrayLike,
    *,
    yhat_eta: ArrayLike | None = None,
    yhat_kappa: ArrayLike | None = None,
) -> float:
    """``best_score_diff(eta, kappa)``: > 0 when eta improves faster than kappa (paper 3.1.1).

    1. Smooth both curves (:func:`smooth`, unless ``yhat_*`` are given).
    2-3. Overlapping sections ``(r, s, n)`` on the smoothed curves
       (:func:`overlap_sections`).
    4. ``max(y_eta[r:r+n]) - max(y_kappa[s:s+n])`` on the *raw* values (the
       smoothed curves are used only to place the sections, as in the paper).

    Special case, no overlap: if the higher-start curve is strictly above the
    other (on the smoothed or the raw values), it is penalised by ``delta``
    over the paper's range (see ``_penalised_sweep``): when eta is the higher
    curve the result is the highest positive penalised score, else 0; when
    kappa is the higher curve the result is ``-best_score_diff(kappa, eta)``,
    so the function is antisymmetric. No overlap without either curve being
    strictly above (e.g. the higher-start curve falls below the other later):
    0. An empty curve (or one with no finite ``y``): 0.
    """
    ye, he = _prepared(x_eta, y_eta, yhat_eta, "eta")
    yk, hk = _prepared(x_kappa, y_kappa, yhat_kappa, "kappa")
    return _score(ye, he, yk, hk)


def _binom(y_eta: np.ndarray, h_eta: np.ndarray, y_kappa: np.ndarray, h_kappa: np.ndarray) -> float | None:
    """binom_test on prepared (finite, smoothed) curves."""
    sections = _overlap(h_eta, h_kappa)
    if sections is None:
        return None
    r, s, n = sections
    k = int(np.count_nonzero(y_eta[r : r + n] > y_kappa[s : s + n]))
    return float(binomtest(k, n, 0.5, alternative="greater").pvalue)


def binom_test(
    x_eta: ArrayLike,
    y_eta: ArrayLike,
    x_kappa: ArrayLike,
    y_kappa: ArrayLike,
    *,
    yhat_eta: ArrayLike | None = None,
    yhat_kappa: ArrayLike | None = None,
) -> float | None:
    """One-sided binomial-test p-value that eta is above kappa (paper 3.2).

    On the overlapping sections ``(r, s, n)`` (as in :func:`best_score_diff`),
    ``k = #{i < n : y_eta[r+i] > y_kappa[s+i]}`` compares the raw values
    pairwise (ties count as not above); the p-value is ``P(X >= k)`` for
    ``X ~ Binomial(n, 1/2)`` (``scipy.stats.binomtest(k, n, 0.5,
    alternative='greater')``). ``None`` when the curves do not overlap.
    """
    ye, he = _prepared(x_eta, y_eta, yhat_eta, "eta")
    yk, hk = _prepared(x_kappa, y_kappa, yhat_kappa, "kappa")
    return _binom(ye, he, yk, hk)


def stop_threshold(p_stat: float, t: float, max_eval_steps: float) -> float:
    """p-value above which an overlapping evaluator stops (paper 3.2, stopping criteria).

    ``p_stat + max(0, 1 - T / max_eval_steps)``: above 1 (never stop) at
    ``T = 0``, falling linearly to ``p_stat`` at ``T = max_eval_steps`` and
    staying there.
    """
    if not 0.0 <= p_stat <= 1.0:
        raise ValueError(f"p_stat must be a probability in [0, 1] (got {p_stat}); the paper uses 0.01")
    if not t >= 0.0:
        raise ValueError(f"t (steps the evaluator has trained) must be >= 0 (got {t})")
    if not max_eval_steps > 0.0:
        raise ValueError(f"max_eval_steps must be > 0 (got {max_eval_steps}); set it to a positive step count")
    return float(p_stat + max(0.0, 1.0 - t / max_eval_steps))


@dataclass(frozen=True)
class Comparison:
    """Evaluator-vs-target comparison: ``best_score_diff``, ``binom_test`` and whether the curves overlap."""

    score_diff: float
    p_value: float | None
    overlap: bool


def compare(
    x_eta: ArrayLike,
    y_eta: ArrayLike,
    x_kappa: ArrayLike,
    y_kappa: ArrayLike,
    *,
    yhat_eta: ArrayLike | None = None,
    yhat_kappa: ArrayLike | None = None,
) -> Comparison:
    """:func:`best_score_diff` and :func:`binom_test` sharing one pair of GP fits (paper 3.2).

    This is the evaluator-vs-target check: success needs ``score_diff > 0``
    and ``p_value < p_stat``; stopping looks at ``overlap`` and compares
    ``p_value`` with :func:`stop_threshold`.
    """
    ye, he = _prepared(x_eta, y_eta, yhat_eta, "eta")
    yk, hk = _prepared(x_kappa, y_kappa, yhat_kappa, "kappa")
    p = _binom(ye, he, yk, hk)
    return Comparison(score_diff=_score(ye, he, yk, hk), p_value=p, overlap=p is not None)
