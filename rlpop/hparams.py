"""The hyperparameter space: how each hyperparameter is first drawn and how PBT's
*explore* step perturbs it.

Each hyperparameter has its own initial distribution and its **own list of
perturbation factors** (FIRE PBT paper, section 4.2: "We perturb each of the
hyperparameters independently. The learning rate is multiplied by a random
value selected from [0.5, 0.8, 1.25, 2.0]. Likewise, eps_eta is multiplied by
a random value selected from [0.8, 0.95, 1.05, 1.2]").

Bounds: ``bounds=None`` (the default) means *unbounded*: explore may carry a
value out of its initial sampling range, as the paper lets the learning rate
leave [1e-5, 1e-3]; log-scale values stay positive because every factor is
positive. Explicit ``bounds=(lo, hi)`` clip every perturbed value into them.

Integers (``integer=True``) are rounded *away from the current value* after a
multiplication (ceil when the factor grows it, floor when it shrinks it), so a
small integer is never pinned: ``1 x 1.25 -> 2``; a log-scale integer never
drops below 1 and bounds still clip. Multiplication cannot move a value of 0:
give such a hyperparameter ``resample_p > 0`` or a lower bound above 0.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed
fixes every draw. Values returned are plain Python ``int``/``float`` (or the
``Choice`` value itself), ready for JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

DEFAULT_FACTORS: tuple[float, ...] = (0.5, 0.8, 1.25, 2.0)


def format_value(value: Any) -> str:
    """A short form of a hyperparameter value for logs: 3 significant digits,
    exponent without padding (``3e-4``, ``2.4e-4``, ``0.01``, ``1.5``, ``64``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if v == 0.0 or not math.isfinite(v):
        return "%g" % v
    if 1e-3 <= abs(v) < 1e4:
        return "%.3g" % v
    mantissa, exponent = ("%.2e" % v).split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def describe_change(old: Any, move: str, new: Any) -> str:
    """``"3e-4 --(x0.8)--> 2.4e-4"``: the text an ``Explore`` decision logs per hparam."""
    return f"{format_value(old)} --({move})--> {format_value(new)}"


def _check_resample_p(cls: str, resample_p: float) -> None:
    if not (isinstance(resample_p, (int, float)) and 0.0 <= float(resample_p) <= 1.0):
        raise ValueError(f"{cls}: resample_p={resample_p!r} is outside [0, 1]; "
                         "give the probability of redrawing from the initial distribution, e.g. 0.0 or 0.25")


@dataclass(frozen=True)
class _Range:
    """Shared part of ``LogUniform`` and ``Uniform`` (validation, clipping, rounding)."""

    lo: float
    hi: float
    factors: Sequence[float] = DEFAULT_FACTORS
    resample_p: float = 0.0
    bounds: tuple[float, float] | None = None
    integer: bool = False

    log: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        cls = type(self).__name__
        for name in ("lo", "hi"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{cls}: {name}={v!r} must be a finite number")
        if self.lo >= self.hi:
            raise ValueError(f"{cls}: lo={self.lo!r} >= hi={self.hi!r}; give lo < hi "
                             "(use Fixed(value) for a constant)")
        if self.log and self.lo <= 0:
            raise ValueError(f"{cls}: lo={self.lo!r} must be > 0 on a log scale; "
                             "use Uniform for a range that includes 0 or negatives")
        factors = tuple(self.factors) if isinstance(self.factors, Iterable) else ()
        if not factors:
            raise ValueError(f"{cls}: factors={self.factors!r} is empty; give a list of positive "
                             f"multipliers such as {list(DEFAULT_FACTORS)}")
        bad = [f for f in factors if isinstance(f, bool) or not isinstance(f, (int, float))
               or not math.isfinite(f) or f <= 0]
        if bad:
            raise ValueError(f"{cls}: factors={list(factors)} has non-positive or non-numeric entries {bad}; "
                             "every factor must be a number > 0")
        object.__setattr__(self, "factors", tuple(float(f) for f in factors))
        _check_resample_p(cls, self.resample_p)
        if self.integer and math.ceil(self.lo) > math.floor(self.hi):
            raise ValueError(f"{cls}: integer=True but [lo, hi] = [{self.lo}, {self.hi}] holds no integer; "
                             "widen the range")
        if self.bounds is not None:
            b = tuple(self.bounds)
            if len(b) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in b):
                raise ValueError(f"{cls}: bounds={self.bounds!r} must be None or a pair (lo, hi) of numbers")
            blo, bhi = float(b[0]), float(b[1])
            if not blo < bhi:
                raise ValueError(f"{cls}: bounds={self.bounds!r} need bounds[0] < bounds[1]")
            if self.log and blo <= 0:
                raise ValueError(f"{cls}: bounds={self.bounds!r} must be > 0 on a log scale; "
                                 "raise bounds[0] above 0")
            if not (blo <= self.lo and self.hi <= bhi):
                raise ValueError(f"{cls}: bounds={self.bounds!r} must contain the sampling range "
                                 f"[lo, hi] = [{self.lo}, {self.hi}]; widen bounds or narrow lo/hi")
            object.__setattr__(self, "bounds", (blo, bhi))

    # -- drawing ---------------------------------------------------------------
    def _draw(self, rng: np.random.Generator) -> float:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> int | float:
        """A value from the initial distribution (within [lo, hi])."""
        x = self._draw(rng)
        if self.integer:
            return int(min(max(math.floor(x), math.ceil(self.lo)), math.floor(self.hi)))
        return float(min(max(x, self.lo), self.hi))

    # -- exploring -------------------------------------------------------------
    def _check_value(self, value: Any) -> float:
        cls = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)):
            raise ValueError(f"{cls}.perturb: value={value!r} is not a finite number")
        if self.log and value <= 0:
            raise ValueError(f"{cls}.perturb: value={value!r} must be > 0 on a log scale")
        return float(value)

    def _finish(self, old: float, x: float) -> tuple[int | float, bool]:
        """Round (integers: away from ``old``) and clip; returns (value, clipped?)."""
        if self.integer:
            if x > old:
                x = float(math.ceil(x))
            elif x < old:
                x = float(math.floor(x))
            if self.log:
                x = max(x, 1.0)
        clipped = False
        if self.bounds is not None:
            lo, hi = self.bounds
            if self.integer:
                lo, hi = float(math.ceil(lo)), float(math.floor(hi))
            if x < lo or x > hi:
                x, clipped = min(max(x, lo), hi), True
        return (int(x) if self.integer else float(x)), clipped

    def perturb(self, value: Any, rng: np.random.Generator) -> tuple[int | float, str]:
        """PBT explore for one hyperparameter: with probability ``resample_p`` a
        fresh draw from the initial distribution, otherwise ``value`` times a
        factor chosen uniformly from this hyperparameter's own ``factors``
        (paper section 4.2). Returns the new value and its log description."""
        old = self._check_value(value)
        if self.resample_p > 0 and rng.random() < self.resample_p:
            new = self.sample(rng)
            return new, describe_change(value, "resample", new)
        factor = self.factors[int(rng.integers(len(self.factors)))]
        new, clipped = self._finish(old, old * factor)
        move = "x%g" % factor + (", clipped" if clipped else "")
        return new, describe_change(value, move, new)


@dataclass(frozen=True)
class LogUniform(_Range):
    """Initial value log-uniform on [lo, hi] (lo > 0); explore multiplies by a factor."""

    log: bool = field(default=True, init=False, repr=False)

    def _draw(self, rng: np.random.Generator) -> float:
        if self.integer:
            # log-uniform over the integers lo..hi: floor of a log-uniform draw on [lo, hi + 1)
            lo, hi = math.ceil(self.lo), math.floor(self.hi) + 1
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))


@dataclass(frozen=True)
class Uniform(_Range):
    """Initial value uniform on [lo, hi]; explore multiplies by a factor."""

    def _draw(self, rng: np.random.Generator) -> float:
        if self.integer:
            return float(rng.integers(math.ceil(self.lo), math.floor(self.hi) + 1))
        return float(rng.uniform(self.lo, self.hi))


def IntUniform(lo: int, hi: int, factors: Sequence[float] = DEFAULT_FACTORS, resample_p: float = 0.0,
               bounds: tuple[float, float] | None = None, log: bool = False) -> LogUniform | Uniform:
    """An integer hyperparameter: ``Uniform(..., integer=True)`` or, with
    ``log=True``, ``LogUniform(..., integer=True)``."""
    cls = LogUniform if log else Uniform
    return cls(lo, hi, factors=factors, resample_p=resample_p, bounds=bounds, integer=True)


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (an ordered list: explore moves to a neighbouring
    index, -1 or +1, staying in range; at an end it moves inward)."""

    values: Sequence[Any]
    resample_p: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Iterable):
            raise ValueError(f"Choice: values={self.values!r} must be a list of options")
        values = tuple(self.values)
        if not values:
            raise ValueError("Choice: values is empty; give at least one option")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"Choice: values={list(values)} has duplicates; list each option once")
        object.__setattr__(self, "values", values)
        _check_resample_p("Choice", self.resample_p)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def _index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value:
                return i
        raise ValueError(f"Choice.perturb: value={value!r} is not one of values={list(self.values)}")

    def perturb(self, value: Any, rng: np.random.Generator) -> tuple[Any, str]:
        """Explore: with probability ``resample_p`` a uniform redraw, else the
        neighbour one index down or up (inward at either end). A single-option
        Choice never changes (description "")."""
        i = self._index(value)
        if len(self.values) == 1:
            return self.values[0], ""
        if self.resample_p > 0 and rng.random() < self.resample_p:
            new = self.sample(rng)
            return new, describe_change(value, "resample", new)
        if i == 0:
            step = 1
        elif i == len(self.values) - 1:
            step = -1
        else:
            step = 1 if rng.random() < 0.5 else -1
        new = self.values[i + step]
        return new, describe_change(value, "%+d" % step, new)


@dataclass(frozen=True)
class Fixed:
    """A constant: never sampled differently, never perturbed."""

    value: Any

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def perturb(self, value: Any, rng: np.random.Generator) -> tuple[Any, str]:
        return value, ""


Param = Union[LogUniform, Uniform, Choice, Fixed]
_PARAM_TYPES = (LogUniform, Uniform, Choice, Fixed)


@dataclass(frozen=True)
class HParamSpace:
    """Named hyperparameters. ``sample`` draws them all; ``perturb`` is PBT's
    explore step: each hyperparameter is perturbed independently with its own
    factor list (paper section 4.2)."""

    params: Mapping[str, Param]

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise ValueError(f"HParamSpace: params must be a dict name -> LogUniform/Uniform/Choice/Fixed, "
                             f"got {type(self.params).__name__}")
        for name, p in self.params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"HParamSpace: hparam name {name!r} must be a non-empty string")
            if not isinstance(p, _PARAM_TYPES):
                raise ValueError(f"HParamSpace: hparam {name!r} is {p!r}; give LogUniform(lo, hi), "
                                 "Uniform(lo, hi), Choice([...]) or Fixed(value)")
        object.__setattr__(self, "params", dict(self.params))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Initial hyperparameters: one draw per hparam, in the space's order."""
        return {name: p.sample(rng) for name, p in self.params.items()}

    def perturb(self, hparams: Mapping[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, str]]:
        """Explore (paper 4.2): perturb every hparam of the space independently.
        Keys of ``hparams`` outside the space pass through unchanged. Returns the
        new dict and ``changes`` (name -> description) for the hparams that were
        perturbed (``Fixed`` and single-option ``Choice`` are left out)."""
        missing = [n for n in self.params if n not in hparams]
        if missing:
            raise ValueError(f"HParamSpace.perturb: hparams lack {missing}; "
                             f"give a value for every hparam of the space {list(self.params)}")
        new = dict(hparams)
        changes: dict[str, str] = {}
        for name, p in self.params.items():
            try:
                new[name], desc = p.perturb(hparams[name], rng)
            except ValueError as e:
                raise ValueError(f"hparam {name!r}: {e}") from None
            if desc:
                changes[name] = desc
        return new, changes
