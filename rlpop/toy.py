"""A deceptive toy trainable: SGD on a noisy, ill-conditioned quadratic (numpy only).

It implements the :class:`rlpop.agents.base.Learner` protocol, so strategies,
backends and the controller can be exercised in seconds with no RL at all, on
a problem where greedy hyperparameter selection is *known* to go wrong: the
learning rate that looks best over a short horizon is not the one that ends
best (the short-horizon bias PBT suffers from and FIRE PBT is built to avoid).

Dynamics
--------
Loss ``L(w) = 1/2 sum_i h_i w_i^2`` in ``d`` dimensions with curvatures
``h_i`` log-spaced in ``[h_min, h_max]`` (default ``1e-3 .. 1``). A step takes
a stochastic gradient whose noise has covariance ``sigma^2 diag(h)`` (noise
proportional to curvature, as for real gradient noise)::

    w_i <- w_i - lr (h_i w_i + sigma sqrt(h_i) xi_i),   xi ~ N(0, I)

so each coordinate is an AR(1) process with ``a_i = 1 - lr h_i`` and::

    E[w_i^2]_t = a_i^(2t) w_i^2 + (1 - a_i^(2t)) lr sigma^2 / (2 - lr h_i)
    E[L]_t     = 1/2 sum_i h_i E[w_i^2]_t                   (see expected_loss)

- **bias** ``a_i^(2t) w_i^2`` decays at rate ``~ 2 lr h_i`` per step: the
  low-curvature directions need ``~ 1/(lr h_min)`` steps, so they need a
  *high* lr to be cleared within a few thousand steps;
- **noise floor** ``1/2 sum_i h_i lr sigma^2 / (2 - lr h_i) ~ lr sigma^2 sum(h) / 4``
  grows with lr and is reached within ``~ 1/(lr h_max)`` steps.

Lowering lr therefore pays off *at once* (the floor, dominated by the
high-curvature directions, drops within a few dozen steps) while it slows the
low-curvature directions for good. A greedy population lowers lr early and
ends worse than a schedule that keeps lr high until the low-curvature bias is
gone and decays it afterwards (asserted in ``tests/test_toy.py``).

Stable range: ``0 < lr < 2 / h_max`` (``|a_i| < 1``). Above it the loss grows
geometrically; ``w`` is clipped to ``[-clip, clip]`` so ``Q`` stays finite.

Q (higher is better): ``-log10(L(w))`` of the noise-free loss at the end of
each ``train`` call, plus ``N(0, eval_noise^2)`` evaluation noise drawn from
the learner's own seeded generator (so GP smoothing has work to do), reported
as the single entry of ``episode_returns``. The initial point has every
direction contributing ``1/2`` to the loss (``w_i = +-1/sqrt(h_i)``, signs from
the seed), so ``Q`` starts at ``-log10(d/2)``.
"""
from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Sequence

import numpy as np
from numpy.typing import ArrayLike

from rlpop.agents.base import TrainResult

__all__ = ["NoisyQuadratic", "expected_loss"]

_DEFAULT_LR = 0.1
_STATE_KEYS = ("w", "rng", "hparams", "step")


def expected_loss(
    w: ArrayLike, h: ArrayLike, schedule: Sequence[tuple[float, int]], grad_noise: float = 1.0
) -> float:
    """``E[L]`` after SGD from ``w`` through a piecewise-constant ``schedule`` of ``(lr, steps)``.

    Per phase, ``E[w_i^2] <- a_i^(2t) E[w_i^2] + (1 - a_i^(2t)) lr sigma^2 / (2 - lr h_i)``
    with ``a_i = 1 - lr h_i``, ``t = steps``, ``sigma = grad_noise`` (module
    docstring); then ``E[L] = 1/2 sum_i h_i E[w_i^2]``. Only second moments
    matter, so phases chain exactly. Ignores clipping: exact in the stable
    range ``0 < lr < 2/max(h)``.
    """
    h = np.asarray(h, dtype=float)
    w_sq = np.asarray(w, dtype=float) ** 2
    for lr, steps in schedule:
        decay = (1.0 - lr * h) ** (2 * int(steps))
        w_sq = decay * w_sq + (1.0 - decay) * lr * grad_noise**2 / (2.0 - lr * h)
    return float(0.5 * np.sum(h * w_sq))


class NoisyQuadratic:
    """SGD on ``1/2 sum h_i w_i^2`` with curvature-shaped gradient noise; see the module docstring.

    ``hparams``: ``{"lr": float}`` (default 0.1). Keyword arguments set the
    problem: ``dim`` (10), ``h_min`` (1e-3), ``h_max`` (1.0), ``grad_noise``
    (sigma, 1.0), ``eval_noise`` (std of Q's evaluation noise, 0.02),
    ``clip`` (box on ``w``, 1e6). Deterministic given ``seed``.
    """

    mutable_hparams: ClassVar[frozenset[str]] = frozenset({"lr"})
    #: no gymnasium env: ``Experiment(env=None, agent=Agent("toy"), env_kwargs={...problem...})``
    needs_env: ClassVar[bool] = False
    DEFAULTS: ClassVar[dict[str, Any]] = {"lr": _DEFAULT_LR}

    def __init__(
        self,
        hparams: dict[str, Any] | None = None,
        seed: int = 0,
        *,
        dim: int = 10,
        h_min: float = 1e-3,
        h_max: float = 1.0,
        grad_noise: float = 1.0,
        eval_noise: float = 0.02,
        clip: float = 1e6,
    ) -> None:
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be an integer >= 1 (got {dim!r})")
        if not 0.0 < h_min <= h_max:
            raise ValueError(f"curvatures need 0 < h_min <= h_max (got h_min={h_min}, h_max={h_max})")
        for name, value in (("grad_noise", grad_noise), ("eval_noise", eval_noise)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
        if not clip > 0.0:
            raise ValueError(f"clip must be > 0 (got {clip!r}); it bounds |w| so Q stays finite")
        self.h = np.geomspace(h_min, h_max, dim)
        self.grad_noise = float(grad_noise)
        self.eval_noise = float(eval_noise)
        self.clip = float(clip)
        self._rng = np.random.default_rng(seed)
        signs = self._rng.choice([-1.0, 1.0], size=dim)
        self._w = signs / np.sqrt(self.h)
        self._step = 0
        self._hparams: dict[str, Any] = {"lr": _DEFAULT_LR}
        self.set_hparams(dict(hparams or {}))

    # -- Learner protocol -----------------------------------------------------------------

    def train(self, steps: int) -> TrainResult:
        """Run ``steps`` SGD steps, then report one noisy ``Q`` measured at the end."""
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps must be an integer >= 1 (got {steps!r})")
        lr = self._hparams["lr"]
        a = 1.0 - lr * self.h
        kicks = self._rng.standard_normal((int(steps), self.h.size))
        kicks *= lr * self.grad_noise * np.sqrt(self.h)
        w = self._w
        if np.all(np.abs(a) <= 1.0):  # stable: w stays O(1/sqrt(h)), no clipping needed
            for kick in kicks:
                w *= a
                w -= kick
        else:  # diverging directions: keep w inside the box
            for kick in kicks:
                w *= a
                w -= kick
                np.clip(w, -self.clip, self.clip, out=w)
        self._step += int(steps)
        loss = self.loss()
        q = -math.log10(max(loss, 1e-300)) + self.eval_noise * float(self._rng.standard_normal())
        return TrainResult(steps=int(steps), episode_returns=[q], metrics={"loss": loss, "lr": lr})

    def get_state(self) -> dict[str, Any]:
        return {
            "w": self._w.copy(),
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "hparams": dict(self._hparams),
            "step": self._step,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"state is missing {missing}; pass a dict from NoisyQuadratic.get_state()")
        w = np.array(state["w"], dtype=float)
        if w.shape != self.h.shape:
            raise ValueError(f"state['w'] has shape {w.shape} but this learner has dim={self.h.size}")
        self.set_hparams(state["hparams"])
        self._w = w
        self._rng.bit_generator.state = copy.deepcopy(state["rng"])
        self._step = int(state["step"])

    def get_hparams(self) -> dict[str, Any]:
        return dict(self._hparams)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        unknown = sorted(set(hparams) - self.mutable_hparams)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} for NoisyQuadratic; valid: {sorted(self.mutable_hparams)}"
            )
        if "lr" in hparams:
            lr = hparams["lr"]
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
                raise ValueError(
                    f"hparam 'lr' must be a finite number > 0 (got {lr!r}); "
                    f"stable range is 0 < lr < {2.0 / float(self.h.max()):g}"
                )
            self._hparams["lr"] = float(lr)

    def close(self) -> None:
        """Nothing to release (no processes, no files)."""

    # -- inspection ----------------------------------------------------------------------------

    def loss(self) -> float:
        """Noise-free loss ``1/2 sum h_i w_i^2`` at the current weights."""
        return float(0.5 * np.sum(self.h * self._w**2))

    @property
    def step(self) -> int:
        """SGD steps taken so far."""
        return self._step


def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """The toy's one hyperparameter: a learning rate > 0."""
    from rlpop.agents.hparam_rules import positive

    return {"lr": positive(0.1)}
