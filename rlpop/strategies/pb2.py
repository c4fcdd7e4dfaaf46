"""Population Based Bandits, PB2 (Parker-Holder et al. 2020, "Provably Efficient
Online Hyperparameter Optimization with Population-Based Bandits").

PB2 is PBT with a different *explore* step. Exploit is PBT's, unchanged: the
same truncation selection (:func:`rlpop.strategies.pbt.truncation_pairs` on the
latest Q, the same rng, drawn exactly as :class:`~rlpop.strategies.pbt.PBTStrategy`
draws it), so for the same seed and views PB2 copies the same members as PBT.
Explore then picks the continuous hyperparameters (``LogUniform``/``Uniform``)
of every exploited member with a GP bandit instead of multiplicative factors:

* Data: one point per member per ready interval, ``(t, x) -> y``: ``t`` the
  interval's end in ready intervals (``steps / ready_steps``, the paper's
  round index), ``x`` the member's hparams during the interval, each mapped to
  [0, 1] within its *exploration bounds* (``bounds``, else ``[lo, hi]``; log
  scale for ``LogUniform``), and ``y`` the improvement of Q over the interval
  per ``ready_steps`` (Ray Tune: the change in reward between ready steps,
  divided by the time it took). An exploited member's interval starts from
  the Q of the member it copied (its new weights); a member's first interval
  starts at the first point of its curve. The last ``max_data`` points are kept.
* Model: scikit-learn's ``GaussianProcessRegressor`` with the time-varying
  kernel of PB2 / TV-GP-UCB (Bogunovic et al. 2016),
  ``c * exp(-|x - x'|^2 / (2 l^2)) * (1 - eps)^(|t - t'| / 2) + noise``, its
  hyperparameters (``c``, ``l``, ``eps <= 0.5``, noise) fitted by marginal
  likelihood; ``y`` standardised and clipped to [-2, 2] as Ray does.
* Acquisition: UCB ``mean + kappa * std`` at the source member's time over
  ``candidates`` seeded uniform points of [0, 1]^d; ``kappa`` defaults to Ray's
  schedule ``sqrt(0.2 + max(0, log(0.4 n)))`` (``n`` data points). Within one
  decision, the points already chosen join the data as pending points (no
  label) when the std is computed, so a batch does not pick the same
  hparams twice (GP-BUCB, Desautels et al. 2014, as Ray does; here the pending
  points count as noise-free, so the batch spreads out even when the fitted
  noise dominates).
* The chosen point is mapped back into the bounds (integers rounded).

``Choice`` hparams are perturbed as PBT perturbs them and ``Fixed`` ones never
change: the space's own ``perturb`` draws them (it is called as PBT calls it,
and its values for the continuous hparams are replaced by the GP's). Until
there are 2 data points the continuous hparams are copied unchanged, as Ray
does when it has no data for the source.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.spatial.distance import cdist

from rlpop.decisions import Decision, Exploit, Explore
from rlpop.gp import single_threaded_blas
from rlpop.hparams import Choice, HParamSpace, LogUniform, Uniform, describe_change, format_value
from rlpop.strategies.common import check_int, check_state_kind, rng_from_state, rng_state
from rlpop.strategies.pbt import PBTStrategy
from rlpop.view import PopulationView, WorkerView

__all__ = ["PB2Strategy"]

#: Ray's UCB schedule: beta_t = C1 + max(0, log(C2 * n)), kappa = sqrt(beta_t)
_UCB_C1 = 0.2
_UCB_C2 = 0.4
#: Ray clips the standardised improvements to [-2, 2]
_Y_CLIP = 2.0
#: GP hyperparameter bounds (x in [0, 1]^d, t in ready intervals, y standardised).
#: Ray caps eps at 0.5 and the squared-exponential length scale l' of
#: exp(-d^2 / l') at 1, i.e. l = sqrt(l' / 2) <= sqrt(0.5) here.
_EPS_BOUNDS = (1e-5, 0.5)
_LENGTH_SCALE_BOUNDS = (1e-2, math.sqrt(0.5))
_AMPLITUDE_BOUNDS = (1e-2, 1e2)
_NOISE_BOUNDS = (1e-5, 1e1)
_JITTER = 1e-10
_MIN_DATA = 2


def _gp_kernel():
    """``ConstantKernel * TimeVarying + WhiteKernel`` (scikit-learn), built lazily so importing the
    strategy does not import scikit-learn."""
    from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel

    return (ConstantKernel(1.0, _AMPLITUDE_BOUNDS) * _time_varying_cls()(0.3, _LENGTH_SCALE_BOUNDS, 0.1, _EPS_BOUNDS)
            + WhiteKernel(0.1, _NOISE_BOUNDS))


_TV_CLS = None


def _time_varying_cls():
    """The time-varying squared-exponential kernel of PB2 as a scikit-learn kernel (column 0 is time)."""
    global _TV_CLS
    if _TV_CLS is not None:
        return _TV_CLS
    from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

    class TimeVaryingSE(Kernel):
        """``exp(-|x - x'|^2 / (2 length_scale^2)) * (1 - epsilon)^(|t - t'| / 2)``, ``t = X[:, 0]``,
        ``x = X[:, 1:]`` (PB2's ``TV_SquaredExp`` without its variance, which ``ConstantKernel`` carries)."""

        def __init__(self, length_scale=0.3, length_scale_bounds=_LENGTH_SCALE_BOUNDS, epsilon=0.1,
                     epsilon_bounds=_EPS_BOUNDS):
            self.length_scale = length_scale
            self.length_scale_bounds = length_scale_bounds
            self.epsilon = epsilon
            self.epsilon_bounds = epsilon_bounds

        @property
        def hyperparameter_length_scale(self):
            return Hyperparameter("length_scale", "numeric", self.length_scale_bounds)

        @property
        def hyperparameter_epsilon(self):
            return Hyperparameter("epsilon", "numeric", self.epsilon_bounds)

        def __call__(self, X, Y=None, eval_gradient=False):
            X = np.atleast_2d(X)
            if Y is None:
                Y = X
            elif eval_gradient:
                raise ValueError("TimeVaryingSE: the gradient is only defined when Y is None")
            Y = np.atleast_2d(Y)
            dt = np.abs(X[:, :1] - Y[:, :1].T)
            d2 = cdist(X[:, 1:], Y[:, 1:], "sqeuclidean")
            l2 = float(self.length_scale) ** 2
            eps = float(self.epsilon)
            K = np.exp(-0.5 * d2 / l2 + 0.5 * dt * math.log1p(-eps))
            if not eval_gradient:
                return K
            # gradients w.r.t. the log hyperparameters, in the order of self.hyperparameters
            # (alphabetical: epsilon, length_scale)
            d_eps = K * (-0.5 * dt * eps / (1.0 - eps))
            d_len = K * d2 / l2
            return K, np.dstack([d_eps, d_len])

        def diag(self, X):
            return np.ones(np.atleast_2d(X).shape[0])

        def is_stationary(self):
            return True

    _TV_CLS = TimeVaryingSE
    return _TV_CLS


# -- the unit box of the continuous hparams ----------------------------------------------------------

def _box(p: LogUniform | Uniform) -> tuple[float, float]:
    """The exploration bounds of ``p`` (``bounds``, else ``[lo, hi]``; integers: the integers inside)."""
    lo, hi = p.bounds if p.bounds is not None else (p.lo, p.hi)
    if p.integer:
        lo, hi = float(math.ceil(lo)), float(math.floor(hi))
    return float(lo), float(hi)


def _to_unit(p: LogUniform | Uniform, value: Any) -> float | None:
    """``value`` in [0, 1] within ``p``'s exploration bounds (log scale for ``LogUniform``), clipped;
    ``None`` when it is not a usable number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    if not math.isfinite(v) or (p.log and v <= 0):
        return None
    lo, hi = _box(p)
    if p.log:
        v, lo, hi = math.log(v), math.log(lo), math.log(hi)
    if hi <= lo:
        return 0.5
    return min(max((v - lo) / (hi - lo), 0.0), 1.0)


def _from_unit(p: LogUniform | Uniform, u: float) -> int | float:
    """The value at ``u`` in [0, 1] within ``p``'s exploration bounds (integers rounded)."""
    lo, hi = _box(p)
    u = min(max(float(u), 0.0), 1.0)
    v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if p.log else lo + u * (hi - lo)
    v = min(max(v, lo), hi)
    return int(min(max(round(v), lo), hi)) if p.integer else float(v)


def _clip(p: LogUniform | Uniform, value: Any) -> int | float:
    """``value`` itself when inside ``p``'s exploration bounds, else the nearest bound."""
    lo, hi = _box(p)
    v = min(max(float(value), lo), hi)
    return int(round(v)) if p.integer else v


# -- the GP -------------------------------------------------------------------------------------------

@dataclass
class _Model:
    """A fitted GP: the latent kernel (amplitude * time-varying), the noise variance and the data."""

    kernel: Any
    noise: float
    X: np.ndarray
    alpha: np.ndarray
    t_ref: float

    def mean(self, Xs: np.ndarray) -> np.ndarray:
        return self.kernel(Xs, self.X) @ self.alpha

    def std(self, Xs: np.ndarray, pending: np.ndarray) -> np.ndarray:
        """Posterior std of the latent function at ``Xs`` given the data *and* the ``pending`` points
        (the variance does not depend on labels, so pending points need none). Pending points count
        as noise-free: with GP-BUCB's noisy ones a fit where noise dominates would barely lower the
        std near them and the whole batch would land on one point."""
        X = np.vstack([self.X, pending]) if len(pending) else self.X
        noise = np.r_[np.full(len(self.X), self.noise), np.zeros(len(pending))]
        K = self.kernel(X) + np.diag(noise + _JITTER)
        L = cholesky(K, lower=True)
        v = solve_triangular(L, self.kernel(X, Xs), lower=True)
        var = self.kernel.diag(Xs) - np.einsum("ij,ij->j", v, v)
        return np.sqrt(np.maximum(var, 0.0))


def _fit(rows: np.ndarray, ready_steps: int) -> _Model:
    """Fit the GP to data rows ``[steps, y, x_1..x_d]`` (marginal likelihood, L-BFGS-B from the kernel's
    initial hyperparameters, like Ray's single ``optimize``: deterministic, no restarts)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor

    t = rows[:, 0] / ready_steps
    t_ref = float(t.max())
    X = np.column_stack([t - t_ref, rows[:, 2:]])
    y = rows[:, 1]
    y = np.clip((y - y.mean()) / (y.std() + 1e-8), -_Y_CLIP, _Y_CLIP)
    gp = GaussianProcessRegressor(kernel=_gp_kernel(), alpha=_JITTER, normalize_y=False,
                                  n_restarts_optimizer=0)
    with warnings.catch_warnings(), single_threaded_blas(len(X)):
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X, y)
    latent, white = gp.kernel_.k1, gp.kernel_.k2
    noise = float(white.noise_level)
    K = latent(X) + (noise + _JITTER) * np.eye(len(X))
    alpha = cho_solve((cholesky(K, lower=True), True), y)
    return _Model(latent, noise, X, alpha, t_ref)


class PB2Strategy(PBTStrategy):
    """PB2 over ``population`` members: PBT's exploit (truncation selection on
    the latest Q), GP-bandit explore of the ``LogUniform``/``Uniform`` hparams
    (see the module docstring). ``synchronous`` and ``ready_steps`` as in PBT.
    ``kappa``: the UCB weight of the std (``None``: Ray's schedule growing with
    the data); ``candidates``: random points the UCB is evaluated at;
    ``max_data``: the GP keeps the last this many data points.
    """

    def __init__(self, space: HParamSpace, *, population: int, ready_steps: int, quantile: float = 0.25,
                 synchronous: bool = True, seed: int = 0, kappa: float | None = None, candidates: int = 1000,
                 max_data: int = 256) -> None:
        super().__init__(space, population=population, ready_steps=ready_steps, seed=seed, quantile=quantile,
                         synchronous=synchronous)
        self._ranges = {n: p for n, p in space.params.items() if isinstance(p, (LogUniform, Uniform))}
        if not self._ranges:
            raise ValueError(f"PB2: space has no LogUniform/Uniform hyperparameter (it has {list(space.names)}); "
                             "PB2's GP bandit explores continuous ranges -- use PBT for a space of "
                             "Choice/Fixed hyperparameters")
        if kappa is not None and (isinstance(kappa, bool) or not isinstance(kappa, (int, float))
                                  or not math.isfinite(kappa) or kappa < 0):
            raise ValueError(f"PB2: kappa={kappa!r} must be None (Ray's schedule) or a number >= 0")
        self.kappa = None if kappa is None else float(kappa)
        self.candidates = check_int(candidates, "candidates", "PB2", 1)
        self.max_data = check_int(max_data, "max_data", "PB2", _MIN_DATA)
        self._gp_rng = np.random.default_rng([self.seed, 2])       # UCB candidates (PBT's own stream selects)
        self._data: list[list[float]] = []                         # rows [steps, y, x_1..x_d]
        self._base: dict[int, tuple[int, float]] = {}              # id -> (steps, Q) where its interval began

    # -- PBT's hooks: what PB2 observes and how it explores --------------------------------------------
    def _observe(self, acting: list[WorkerView]) -> None:
        self._record(acting)

    def _exploit_and_explore(self, pairs: list[tuple[int, int]], view: PopulationView,
                             acting: list[WorkerView]) -> list[Decision]:
        out = self._explore_by_ucb(pairs, view)
        for m in acting:
            if m.has_state and math.isfinite(m.q):
                self._base[m.id] = (int(m.steps), float(m.q))
            else:
                self._base.pop(m.id, None)
        for src, dst in pairs:        # the copy's next interval starts from the weights it copied
            self._base[dst] = (int(view[dst].steps), float(view[src].q))
        return out

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "pb2", "rng": rng_state(self._rng), "gp_rng": rng_state(self._gp_rng),
                "last_ready": self._clock.get_state(), "data": [list(r) for r in self._data],
                "base": {str(k): [s, q] for k, (s, q) in sorted(self._base.items())}}

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "pb2", "PB2")
        width = 2 + len(self._ranges)
        bad = [r for r in state["data"] if len(r) != width]
        if bad:
            raise ValueError(f"PB2.set_state: data rows have {len(bad[0])} values, not {width} "
                             f"(steps, y and one per continuous hparam {list(self._ranges)}); "
                             "resume with the hparam space the run was started with")
        self._rng = rng_from_state(state["rng"])
        self._gp_rng = rng_from_state(state["gp_rng"])
        self._clock.set_state(state["last_ready"])
        self._data = [[int(r[0])] + [float(v) for v in r[1:]] for r in state["data"]][-self.max_data:]
        self._base = {int(k): (int(v[0]), float(v[1])) for k, v in state["base"].items()}

    def plan(self) -> str:
        """What this PB2 will do, in one paragraph (for ``--dry-run``)."""
        def rng_text(name: str, p: LogUniform | Uniform) -> str:
            lo, hi = _box(p)
            kind = ("log " if p.log else "") + ("integer " if p.integer else "")
            return f"{name} in [{format_value(lo)}, {format_value(hi)}]" + (f" ({kind.strip()})" if kind else "")

        others = [n for n in self.space.names if n not in self._ranges]
        sync = ("synchronously, once every member is ready" if self.synchronous
                else "asynchronously, whichever members are ready")
        ranges = ", ".join(rng_text(n, p) for n, p in self._ranges.items())
        kappa = (f"kappa={self.kappa:g}" if self.kappa is not None
                 else "kappa=sqrt(0.2 + max(0, log(0.4 n))) for n data points (Ray's schedule)")
        text = (f"PB2 (Parker-Holder et al. 2020) over {self.population} members, seed {self.seed}: every "
                f"{self.ready_steps} steps of a member ({sync}) the bottom {self.quantile:g} of the members by "
                f"latest Q copy weights and hparams of a random strictly fitter member of the top {self.quantile:g} "
                f"(PBT's truncation selection); the copy's {ranges} "
                f"are then chosen by a GP bandit: a time-varying GP (squared exponential in the hparams times "
                f"(1-eps)^(|t-t'|/2) in ready intervals) fitted to the improvement of Q per ready interval of the "
                f"last {self.max_data} (time, hparams) points, maximising UCB = mean + kappa * std ({kappa}) at the "
                f"current time over {self.candidates} random candidates within the bounds, points already chosen "
                f"in the same batch lowering the std")
        choices = [n for n in others if isinstance(self.space.params[n], Choice)]
        fixed = [n for n in others if n not in choices]
        if choices:
            text += f"; {', '.join(choices)} (Choice) perturbed as in PBT"
        if fixed:
            text += f"; {', '.join(fixed)} fixed"
        return text + "."

    # -- internals -----------------------------------------------------------------------------------
    def _unit(self, hparams: Mapping[str, Any]) -> list[float] | None:
        out = []
        for name, p in self._ranges.items():
            u = _to_unit(p, hparams.get(name))
            if u is None:
                return None
            out.append(u)
        return out

    def _record(self, acting: Sequence[WorkerView]) -> None:
        """One data point per acting member: the improvement of Q over its last interval, per ready_steps."""
        for m in acting:
            if not (m.has_state and math.isfinite(m.q)):
                continue
            base = self._base.get(m.id)
            if base is not None:
                gap, q0 = m.steps - base[0], base[1]
            elif len(m.curve_q) >= 2 and math.isfinite(float(m.curve_q[0])):
                gap, q0 = float(m.curve_steps[-1] - m.curve_steps[0]), float(m.curve_q[0])
            else:
                continue
            x = self._unit(m.hparams)
            if gap <= 0 or x is None:
                continue
            self._data.append([int(m.steps), (m.q - q0) * self.ready_steps / float(gap)] + x)
        del self._data[:-self.max_data]

    def _kappa(self) -> float:
        if self.kappa is not None:
            return self.kappa
        return math.sqrt(_UCB_C1 + max(0.0, math.log(_UCB_C2 * len(self._data))))

    def _explore_by_ucb(self, pairs: Sequence[tuple[int, int]], view: PopulationView) -> list[Decision]:
        """``Exploit(src, dst)`` then ``Explore(dst, ...)`` per pair: Choice/Fixed hparams from the space's
        perturb (PBT's draw, same rng use), continuous ones from the GP's UCB."""
        out: list[Decision] = []
        model = None
        if pairs and len(self._data) >= _MIN_DATA:
            model = _fit(np.asarray(self._data, dtype=float), self.ready_steps)
        pending: list[list[float]] = []
        for src, dst in pairs:
            old = view[src].hparams
            new, changes = self.space.perturb(old, self._rng)
            if model is None:
                for name, p in self._ranges.items():
                    new[name] = _clip(p, old[name])
                    changes[name] = describe_change(old[name], "PB2: no data yet, kept", new[name])
            else:
                t = view[src].steps / self.ready_steps - model.t_ref
                u = self._choose(model, t, np.asarray(pending, dtype=float))
                pending.append([t] + list(u))
                for (name, p), ui in zip(self._ranges.items(), u):
                    new[name] = _from_unit(p, ui)
                    changes[name] = describe_change(old[name], "PB2 UCB", new[name])
            changes = {n: changes[n] for n in self.space.names if n in changes}
            out.append(Exploit(src=src, dst=dst))
            out.append(Explore(dst=dst, hparams=new, changes=changes))
        return out

    def _choose(self, model: _Model, t: float, pending: np.ndarray) -> np.ndarray:
        """The candidate of [0, 1]^d maximising UCB at time ``t`` (in the model's time frame)."""
        cand = self._gp_rng.random((self.candidates, len(self._ranges)))
        Xs = np.column_stack([np.full(len(cand), t), cand])
        with single_threaded_blas(len(Xs)):
            ucb = model.mean(Xs) + self._kappa() * model.std(Xs, pending)
        return cand[int(np.argmax(ucb))]
