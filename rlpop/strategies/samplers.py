"""Samplers: where trial-based strategies (ASHA, HyperBand) get each new configuration.

A sampler hands out trials and hears back their results::

    trial_id, hparams = sampler.ask()      # a new trial and its hyperparameters
    ...                                    # train it
    sampler.tell(trial_id, value)          # its result; higher is better

``value`` NaN (or any non-finite number) means the trial failed or its result
is unknown: the trial is recorded as *failed* and never counts as a result.

Three samplers, by name (:func:`make_sampler`):

* ``"random"`` -- :class:`RandomSampler`: independent draws from the space's own
  initial distributions (``HParamSpace.sample``, the stream RandomSearch draws
  its population from); results are ignored.
* ``"tpe"`` / ``"gp"`` -- :class:`OptunaSampler`: Optuna's ``TPESampler`` or
  ``GPSampler`` through Optuna's ask-and-tell interface, on an in-memory study
  that maximises the told values.

Checkpointing: ``get_state()`` is plain JSON (``json.dumps(..., allow_nan=False)``
works) and ``set_state(state)`` restores it into a sampler built with the same
space and seed. Trials asked but not yet told keep their ids across a restore,
so ``tell(id, value)`` after a resume works.

Resumed determinism (Optuna samplers): before *every* ask, the Optuna sampler is
re-created, seeded from ``(seed, number of trials in the study)``. The next
suggestion therefore depends only on the seed and the trial history (params,
states, values, in order), which is exactly what ``get_state()`` saves. A
restored sampler's next asks equal those of the uninterrupted run as long as
Optuna's TPE/GP samplers are a function of (seed, study trials) -- true for
Optuna 5.0 (checked by ``tests/test_samplers.py`` for both TPE and GP; it is
why the sampler is re-created rather than kept: ``GPSampler`` otherwise keeps
a cache of fitted kernel parameters between asks, a state no checkpoint holds).
The saved trials' wall-clock times are not restored; neither sampler reads them.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from rlpop.hparams import Choice, Fixed, HParamSpace, LogUniform, Uniform
from rlpop.strategies.common import check_int, check_space, check_state_kind, rng_from_state, rng_state

SAMPLERS: tuple[str, ...] = ("random", "tpe", "gp")
OPTUNA_KINDS: tuple[str, ...] = ("tpe", "gp")


@runtime_checkable
class Sampler(Protocol):
    """What a trial-based strategy needs from a source of configurations."""

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial: its id and its hyperparameters (every hparam of the space)."""
        ...

    def tell(self, trial_id: int, value: float) -> None:
        """The result of trial ``trial_id`` (higher is better; NaN: failed / unknown)."""
        ...

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        ...

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`get_state`."""
        ...


def check_sampler(name: Any, field: str = "sampler") -> str:
    """``name`` if it names a sampler, else a one-line ``ValueError`` listing the valid
    names (``field``: how the message calls the setting, e.g. ``"strategy.search"``)."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"{field}={name!r} is not a sampler; give one of "
                         + ", ".join(repr(s) for s in SAMPLERS))
    if name != "random":  # Optuna's samplers
        from rlpop.extras import require

        require("optuna", f"{field}={name!r}")
    return name


def make_sampler(name: str, space: HParamSpace, seed: int) -> "Sampler":
    """The sampler called ``name`` ("random", "tpe" or "gp") over ``space``, seeded by ``seed``."""
    name = check_sampler(name)
    if name == "random":
        return RandomSampler(space, seed)
    return OptunaSampler(space, seed, kind=name)


def _check_value(value: Any, owner: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}.tell: value={value!r} must be a number (NaN for a failed trial)")
    return float(value)


# -- random ---------------------------------------------------------------------------------------

class RandomSampler:
    """Independent draws from the space's initial distributions, from the numpy
    stream seeded ``(seed, 0)`` -- the stream of :func:`~rlpop.strategies.common.initial_draws`,
    so its first draws equal RandomSearch's with the same seed (ASHA relies on
    this). Told results are checked (the id must have been asked) and ignored."""

    kind = "random"

    def __init__(self, space: HParamSpace, seed: int = 0) -> None:
        check_space(space, "RandomSampler")
        self.space = space
        self.seed = check_int(seed, "seed", "RandomSampler", 0)
        self._rng = np.random.default_rng([self.seed, 0])
        self._n = 0

    def ask(self) -> tuple[int, dict[str, Any]]:
        trial_id = self._n
        self._n += 1
        return trial_id, self.space.sample(self._rng)

    def tell(self, trial_id: int, value: float) -> None:
        if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)) \
                or not 0 <= trial_id < self._n:
            raise ValueError(f"RandomSampler.tell: trial_id={trial_id!r} was never asked "
                             f"(ids so far: 0..{self._n - 1})")
        _check_value(value, "RandomSampler")

    def get_state(self) -> dict[str, Any]:
        return {"sampler": self.kind, "rng": rng_state(self._rng), "n_trials": self._n}

    def set_state(self, state: Mapping[str, Any]) -> None:
        check_state_kind(state, self.kind, "RandomSampler", key="sampler")
        self._rng = rng_from_state(state["rng"])
        self._n = int(state["n_trials"])


# -- Optuna ---------------------------------------------------------------------------------------

def _plain_choices(values: tuple[Any, ...]) -> bool:
    """Whether ``values`` can be Optuna categorical choices as they are: JSON
    primitives (None, bool, int, float, str; floats finite) that stay distinct
    under ``==`` (``True`` and ``1`` would not)."""
    for v in values:
        if v is None or isinstance(v, (bool, str)) or type(v) is int:
            continue
        if isinstance(v, float) and math.isfinite(v):
            continue
        return False
    return len(set(values)) == len(values)


def optuna_distribution(param: Any) -> Any:
    """The Optuna distribution of one hparam (``None`` for ``Fixed``, which Optuna never sees).

    * ``LogUniform(lo, hi)`` -> ``FloatDistribution(lo, hi, log=True)``; with
      ``integer=True`` -> ``IntDistribution(ceil(lo), floor(hi), log=True)``.
    * ``Uniform(lo, hi)`` -> ``FloatDistribution(lo, hi)``; with ``integer=True``
      -> ``IntDistribution(ceil(lo), floor(hi))``.
    * ``Choice(values)`` -> ``CategoricalDistribution(values)`` when the values
      are JSON primitives (None, bool, int, float, str) distinct under ``==``;
      otherwise (lists, tuples, dicts, numpy scalars, ``True`` next to ``1``, ...)
      ``CategoricalDistribution`` over the *indices* ``0..n-1``, and ``ask``
      returns ``values[index]``. Either way the saved state holds only JSON.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(param, Fixed):
        return None
    if isinstance(param, (LogUniform, Uniform)):
        log = isinstance(param, LogUniform)
        if param.integer:
            return IntDistribution(int(math.ceil(param.lo)), int(math.floor(param.hi)), log=log)
        return FloatDistribution(float(param.lo), float(param.hi), log=log)
    if isinstance(param, Choice):
        values = tuple(param.values)
        return CategoricalDistribution(values if _plain_choices(values) else tuple(range(len(values))))
    raise ValueError(f"optuna_distribution: unknown hparam {param!r}")


def optuna_distributions(space: HParamSpace) -> dict[str, Any]:
    """Name -> Optuna distribution for every hparam of ``space`` but the ``Fixed`` ones."""
    out = {}
    for name, p in space.params.items():
        d = optuna_distribution(p)
        if d is not None:
            out[name] = d
    return out


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaSampler:
    """Optuna's TPE (``kind="tpe"``) or GP (``kind="gp"``) sampler through
    ask-and-tell on an in-memory study that maximises the told values.

    Trial ids are the Optuna trial numbers (0, 1, 2, ...). ``Fixed`` hparams are
    not shown to Optuna; ``ask`` adds them unchanged. Reproducible per seed: the
    same sequence of asks and tells gives the same hparams. Before every ask the
    Optuna sampler is re-created with a seed drawn from ``(seed, number of
    trials so far)`` (see the module doc: this makes a restored sampler continue
    exactly as the uninterrupted one). ``n_startup_trials``: completed trials
    drawn at random before the model is used (Optuna's default, 10).
    """

    def __init__(self, space: HParamSpace, seed: int = 0, kind: str = "tpe", *,
                 n_startup_trials: int = 10) -> None:
        check_space(space, "OptunaSampler")
        if kind not in OPTUNA_KINDS:
            raise ValueError(f"OptunaSampler: kind={kind!r} is not one of "
                             + ", ".join(repr(k) for k in OPTUNA_KINDS))
        self.space = space
        self.seed = check_int(seed, "seed", "OptunaSampler", 0)
        self.kind = kind
        self.n_startup_trials = check_int(n_startup_trials, "n_startup_trials", "OptunaSampler", 0)
        self.distributions = optuna_distributions(space)
        # names whose Optuna choices are indices into Choice.values
        self._by_index = {name for name, p in space.params.items()
                          if isinstance(p, Choice) and not _plain_choices(tuple(p.values))}
        _quiet_optuna()
        self._study = self._new_study()

    # -- Optuna objects ---------------------------------------------------------------------------
    def _new_study(self) -> Any:
        import optuna

        return optuna.create_study(direction="maximize", sampler=self._new_sampler(0))

    def _new_sampler(self, n_trials: int) -> Any:
        """The Optuna sampler for the ask after ``n_trials`` trials, seeded from (seed, n_trials)."""
        import optuna

        seed = int(np.random.SeedSequence([self.seed, 3, n_trials]).generate_state(1)[0]) % (1 << 30)
        if self.kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials)

    def _hparams(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's hparams in the space's order (Fixed values added, index choices decoded)."""
        out: dict[str, Any] = {}
        for name, p in self.space.params.items():
            if isinstance(p, Fixed):
                out[name] = p.value
                continue
            v = params[name]
            if name in self._by_index:
                out[name] = p.values[int(v)]
            elif isinstance(p, (LogUniform, Uniform)):
                out[name] = int(v) if p.integer else float(v)
            else:
                out[name] = v
        return out

    # -- Sampler ------------------------------------------------------------------------------------
    def ask(self) -> tuple[int, dict[str, Any]]:
        self._study.sampler = self._new_sampler(len(self._study.get_trials(deepcopy=False)))
        trial = self._study.ask(dict(self.distributions))
        return trial.number, self._hparams(trial.params)

    def tell(self, trial_id: int, value: float) -> None:
        from optuna.trial import TrialState

        trials = self._study.get_trials(deepcopy=False)
        if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)) \
                or not 0 <= trial_id < len(trials):
            raise ValueError(f"OptunaSampler.tell: trial_id={trial_id!r} was never asked "
                             f"(ids so far: 0..{len(trials) - 1})")
        trial_id = int(trial_id)
        if trials[trial_id].state != TrialState.RUNNING:
            raise ValueError(f"OptunaSampler.tell: trial {trial_id} was already told "
                             f"({trials[trial_id].state.name.lower()})")
        v = _check_value(value, "OptunaSampler")
        if math.isfinite(v):
            self._study.tell(trial_id, v)
        else:
            self._study.tell(trial_id, state=TrialState.FAIL)

    def get_state(self) -> dict[str, Any]:
        """``{"sampler", "seed", "trials": [{"id", "state", "params", "value"}, ...]}``:
        every trial asked so far, in id order; ``state`` is "complete", "fail" or
        "running" (asked, not told); ``value`` is null unless complete; ``params``
        are Optuna's (no Fixed hparams; index-mapped choices as their index)."""
        trials = []
        for t in self._study.get_trials(deepcopy=False):
            params = {k: (v if not isinstance(v, np.generic) else v.item()) for k, v in t.params.items()}
            trials.append({"id": t.number, "state": t.state.name.lower(), "params": params,
                           "value": float(t.value) if t.value is not None else None})
        return {"sampler": self.kind, "seed": self.seed, "trials": trials}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Rebuild a fresh study from the saved trials (``study.add_trial``): complete
        and failed ones as they were, running ones as running trials under the same
        ids, so a later ``tell(id, value)`` finishes them."""
        from optuna.trial import TrialState, create_trial

        check_state_kind(state, self.kind, "OptunaSampler", key="sampler")
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"OptunaSampler.set_state: state has seed={state.get('seed')!r}, this sampler "
                             f"seed={self.seed}; resume with the seed the run was started with")
        states = {"complete": TrialState.COMPLETE, "fail": TrialState.FAIL, "running": TrialState.RUNNING}
        study = self._new_study()
        for i, rec in enumerate(state.get("trials", [])):
            if rec.get("id") != i or rec.get("state") not in states:
                raise ValueError(f"OptunaSampler.set_state: trial record {i} is {rec!r}; expected id {i} "
                                 f"and state one of {sorted(states)}")
            params = dict(rec["params"])
            if set(params) != set(self.distributions):
                raise ValueError(f"OptunaSampler.set_state: trial {i} has hparams {sorted(params)}, the space "
                                 f"samples {sorted(self.distributions)}; resume with the same space")
            st = states[rec["state"]]
            try:
                frozen = create_trial(state=st, params=params, distributions=dict(self.distributions),
                                      value=float(rec["value"]) if st == TrialState.COMPLETE else None)
                study.add_trial(frozen)
            except (ValueError, TypeError) as e:
                raise ValueError(f"OptunaSampler.set_state: trial {i} does not fit this space ({e}); "
                                 "resume with the same space") from None
        self._study = study

    # -- for inspection -----------------------------------------------------------------------------
    @property
    def n_trials(self) -> int:
        return len(self._study.get_trials(deepcopy=False))
