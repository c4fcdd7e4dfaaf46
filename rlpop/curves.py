"""FIRE PBT curve math (Dalibard & Jaderberg 2020, sections 3.1.1 and 3.2).

Pure functions on arrays, one per step of the paper:

- :func:`smooth` -- 3.1.1 step 1, GP smoothing (the empirical-Bayes fit lives
  in :mod:`rlpop.gp`);
- :func:`overlap_sections` -- 3.1.1 steps 2-3, the overlapping sections;
- :func:`best_score_diff` -- 3.1.1 step 4, plus the special case (curves that
  do not overlap, one strictly above the other: the penalised-delta sweep);
- :func:`binom_test` -- 3.2, the one-sided binomial test;
- :func:`stop_threshold` -- 3.2, the evaluator stopping threshold;
- :func:`compare` -- the last two comparisons sharing one pair of fits.

No state: callers that compare the same curve many times cache :func:`smooth`
and pass the result as ``yhat_*``.

A curve is ``(x, y)``: ``x`` the actor steps at which Q was measured, ``y`` the
measured Q (higher is better). Non-finite ``y`` points carry no information:
:func:`smooth` leaves them out of the fit (and still predicts there), and the
comparisons drop them (``x``, ``y`` and ``yhat`` together) before anything
else. Non-finite ``x`` or mismatched lengths are caller bugs and raise
``ValueError``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest

from rlpop import gp

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



def smooth(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """GP posterior mean of a training curve at its own steps (paper 3.1.1, step 1).

    The curve is validated here (1-D, equal lengths, finite ``x``; else
    ``ValueError``) and fitted by :func:`rlpop.gp.fit`: a Matérn 5/2 GP whose
    hyperparameters are fitted by empirical Bayes. Non-finite ``y`` points are
    left out of the fit but still predicted; fewer than 3 finite points or a
    flat curve come back as given (see :func:`rlpop.gp.fit` for every
    degenerate case). A pure function of ``(x, y)``: callers may cache it.
    """
    xs, ys = _curve(x, y, "(x, y)")
    return gp.fit(xs, ys)


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
    """Paper 3.1.1, special case (no overlap, ``hi`` strictly above ``lo``): the penalised-delta sweep,
    the best positive score of ``penalised_delta(hi)`` vs ``lo``, else 0.

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
