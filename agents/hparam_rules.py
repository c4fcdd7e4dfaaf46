"""What values a learner's hyperparameters may take, checked before anything starts.

A learner module declares ``hparam_rules(hp) -> {name: Rule}`` (``hp``: its resolved hyperparameters, for
rules that depend on others, e.g. ``minibatch_size <= rollout_steps``). The experiment spec checks every fixed
value against its rule, and every search space against the rule of its hyperparameter: an initial range that
leaves the valid range is an error; exploration that could leave it (``gamma`` multiplied above 1) has its
bounds clipped into the valid range, and the caller is told. Pure functions, no I/O.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from rlpop.hparams import Choice, Fixed, LogUniform, Uniform


@dataclass(frozen=True)
class Rule:
    """``kind``: "real", "int", "bool", "choice", "layers" (a list of positive ints), "str", "device" or "none"
    (only None is valid; ``none_means`` says why)."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    none_ok: bool = False
    choices: tuple = ()
    example: Any = None
    #: values above it are valid but almost surely wrong (a learning rate of 5): said once, not refused
    warn_above: float | None = None
    #: what None stands for, when it is allowed (said in the error message)
    none_means: str = ""

    def describe(self) -> str:
        if self.kind == "none":
            return f"None ({self.none_means})"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        if self.kind == "layers":
            return "a list of layer widths (integers >= 1), e.g. [64, 64]"
        if self.kind == "str":
            return "a string"
        if self.kind == "device":
            return "'auto', 'cpu', 'cuda' or 'cuda:N'"
        what = "an integer" if self.kind == "int" else "a number"
        if self.lo is not None and self.hi is not None:
            rng = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        elif self.lo is not None:
            rng = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            rng = f"<= {self.hi:g}"
        else:
            rng = ""
        out = f"{what} {rng}".strip()
        return out + ((f" (or None: {self.none_means})" if self.none_means else " (or None)") if self.none_ok else "")

    def in_range(self, x: float) -> bool:
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            return False
        return self.hi is None or x <= self.hi

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is valid, else what it should be."""
        if value is None:
            return None if self.none_ok else f"expected {self.describe()}"
        if self.kind == "none":
            return f"expected {self.describe()}"
        if self.kind == "device":
            return device_problem(value)
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"expected {self.describe()}"
        if self.kind == "choice":
            return None if value in self.choices else f"expected {self.describe()}"
        if self.kind == "str":
            return None if isinstance(value, str) else f"expected {self.describe()}"
        if self.kind == "layers":
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
            return None if ok else f"expected {self.describe()}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {self.describe()}"
        if self.kind == "int" and not float(value).is_integer():
            return f"expected {self.describe()}"
        if not math.isfinite(float(value)) or not self.in_range(float(value)):
            return f"expected {self.describe()}"
        return None


def positive(example: Any = None, warn_above: float | None = None) -> Rule:
    return Rule("real", lo=0.0, lo_open=True, example=example, warn_above=warn_above)


def grad_norm(example: Any = 0.5) -> Rule:
    """A gradient-clipping threshold: > 0, or None for no clipping (0 would zero every gradient)."""
    return Rule("real", lo=0.0, lo_open=True, none_ok=True, example=example, none_means="no clipping")


def learning_rate(example: Any = 3e-4) -> Rule:
    """> 0; above 1 an Adam learner diverges or collapses its policy: said, not refused."""
    return positive(example, warn_above=1.0)


def nonnegative(example: Any = None, none_ok: bool = False) -> Rule:
    return Rule("real", lo=0.0, none_ok=none_ok, example=example)


def unit(example: Any = None, lo_open: bool = False) -> Rule:
    """A number in [0, 1] (``(0, 1]`` with ``lo_open``)."""
    return Rule("real", lo=0.0, hi=1.0, lo_open=lo_open, example=example)


def integer(lo: int = 1, hi: int | None = None, example: Any = None, none_ok: bool = False) -> Rule:
    return Rule("int", lo=lo, hi=hi, none_ok=none_ok, example=example)


def flag() -> Rule:
    return Rule("bool")


def one_of(*choices: Any) -> Rule:
    return Rule("choice", choices=tuple(choices))


def _hint(rule: Rule) -> str:
    return f" (e.g. {rule.example!r})" if rule.example is not None else ""


def check_values(rules: Mapping[str, Rule], hparams: Mapping[str, Any], where: str) -> None:
    """Raise ValueError (one line: the field, its value, what it must be) for the first invalid value."""
    for name, value in hparams.items():
        rule = rules.get(name)
        problem = rule.problem(value) if rule is not None else None
        if problem:
            raise ValueError(f"{where}.{name}={value!r}: {problem}{_hint(rule)}")


def value_notes(rules: Mapping[str, Rule], hparams: Mapping[str, Any], where: str) -> list[str]:
    """Valid but suspicious values (above a rule's ``warn_above``), one note each."""
    out = []
    for name, value in hparams.items():
        rule = rules.get(name)
        if rule is not None and rule.warn_above is not None and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and value > rule.warn_above:
            out.append(f"{where}.{name}={value!r} is above {rule.warn_above:g}: training will most likely "
                       f"diverge or collapse (typical: {rule.example!r})")
    return out


def check_space(rules: Mapping[str, Rule], params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check each search space against its hyperparameter's rule.

    Returns the space with exploration bounds clipped into the valid range where explore could leave it,
    and one note per clipped hyperparameter. Raises ValueError when the initial range itself is invalid.
    """
    out, notes = dict(params), []
    for name, p in params.items():
        rule = rules.get(name)
        if rule is None:
            continue
        where = f"space.{name}"
        if isinstance(p, Fixed):
            problem = rule.problem(p.value)
            if problem:
                raise ValueError(f"{where}=Fixed({p.value!r}): {problem}{_hint(rule)}")
        elif isinstance(p, Choice):
            for v in p.values:
                problem = rule.problem(v)
                if problem:
                    raise ValueError(f"{where}=Choice({list(p.values)}): option {v!r}: {problem}{_hint(rule)}")
            high = [v for v in p.values if rule.warn_above is not None and isinstance(v, (int, float))
                    and not isinstance(v, bool) and v > rule.warn_above]
            if high:
                notes.append(f"{where}=Choice({list(p.values)}): option(s) {high} above {rule.warn_above:g}: those "
                             f"members will most likely diverge or collapse (typical: {rule.example!r})")
            if len(p.values) == 1:
                notes.append(f"{where}=Choice({list(p.values)}) has one option: it never changes (as "
                             f"Fixed({p.values[0]!r})); give two or more options to search it")
        elif isinstance(p, (LogUniform, Uniform)):
            if rule.kind not in ("real", "int"):
                raise ValueError(f"{where}: {name} is {rule.describe()}, not a number range; use Choice([...]) "
                                 "or Fixed(value)")
            if rule.kind == "int" and not p.integer:
                raise ValueError(f"{where}: {name} is an integer; use IntUniform({p.lo:g}, {p.hi:g}) "
                                 f"(log=True for a log scale)")
            for end in (p.lo, p.hi):
                if not rule.in_range(float(end)):
                    raise ValueError(f"{where}: range [{p.lo:g}, {p.hi:g}] leaves the valid values of {name} "
                                     f"({rule.describe()}); narrow lo/hi")
            if rule.warn_above is not None and float(p.hi) > rule.warn_above:
                notes.append(f"{where}: range [{p.lo:g}, {p.hi:g}] reaches above {rule.warn_above:g}: those "
                             f"members will most likely diverge or collapse (typical: {rule.example!r})")
            adjusted = _clip_bounds(rule, p)
            if adjusted is not p:
                out[name] = adjusted
                notes.append(f"space.{name}: exploration could carry {name} outside {rule.describe()}; its "
                             f"bounds are set to ({adjusted.bounds[0]:g}, {adjusted.bounds[1]:g}) "
                             "(give bounds=(lo, hi) to choose them)")
    return out, notes


def _clip_bounds(rule: Rule, p: LogUniform | Uniform) -> LogUniform | Uniform:
    """``p`` with exploration bounds inside the rule's range (``p`` itself when explore cannot leave it).

    Explore multiplies by positive factors, so a value keeps its sign: a positive real never reaches a lower
    limit of 0, and a log-scale integer never drops below 1; a non-log integer can be floored to 0, and any
    value can be multiplied past an upper limit (``gamma`` above 1).
    """
    unbounded_lo = math.ulp(0.0) if p.log else -math.inf
    blo, bhi = p.bounds if p.bounds is not None else (unbounded_lo, math.inf)
    lo_safe = (rule.lo is None or blo >= rule.lo
               or (rule.lo <= 0 and float(p.lo) > 0 and not p.integer)
               or (rule.lo <= 0 and float(p.lo) >= 0 and not rule.lo_open)
               or (p.log and p.integer and rule.lo <= 1))
    hi_safe = rule.hi is None or bhi <= rule.hi
    if lo_safe and hi_safe:
        return p
    return dataclasses.replace(p, bounds=(blo if lo_safe else float(rule.lo), bhi if hi_safe else float(rule.hi)))


def device_rule() -> Rule:
    return Rule("device")


def device_problem(value: Any) -> str | None:
    """None when torch can use ``value`` ("auto", "cpu", "cuda", "cuda:N"), else why not and the fix."""
    if value in ("auto", "cpu"):
        return None
    if not isinstance(value, str) or not (value == "cuda" or value.startswith("cuda:")):
        return "expected 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'"
    import torch

    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} sees no CUDA device here; use 'auto' (CUDA when present, else CPU) "
                "or 'cpu'")
    if ":" in value:
        idx = value.split(":", 1)[1]
        if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s): use cuda:0..cuda:{torch.cuda.device_count() - 1}"
    return None
