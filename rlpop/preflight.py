"""Checks a run makes before its run directory exists, on things the experiment's dataclasses cannot see:
a learner of the user's own against the learner protocol, and what one env actually returns against the spaces
it declares. Each raises ``ValueError`` with one line naming the field or the cause and the fix."""
from __future__ import annotations

from typing import Any

import numpy as np

#: the methods of the learner protocol (rlpop.agents.base.Learner)
PROTOCOL = ("train", "get_state", "set_state", "get_hparams", "set_hparams", "close")


def check_learner_protocol(learner: str) -> None:
    """A ``"module:Class"`` learner has every method of the protocol (rlpop's own and the adapters have)."""
    from rlpop.agents import ADAPTERS, LEARNERS, learner_class

    prefix, colon, _ = learner.partition(":")
    if learner in LEARNERS or not colon or prefix in ADAPTERS:
        return
    cls = learner_class(learner)
    missing = [m for m in PROTOCOL if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"agent.learner={learner!r} lacks {', '.join(missing)} of the learner protocol "
                         "(rlpop.agents.base.Learner, docs/learners.md); add them")


def _shape(x: Any) -> str:
    try:
        return str(tuple(np.shape(x)))
    except Exception:  # noqa: BLE001 -- a ragged or odd value: its type says enough
        return type(x).__name__


def _check_obs(label: str, where: str, obs: Any, space: Any) -> None:
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        arr = np.asarray(obs) if not isinstance(obs, dict) else None
        if arr is None or arr.shape != space.shape:
            raise ValueError(f"{label}: {where} returned an observation of shape {_shape(obs)}, but the env declares "
                             f"observation_space={space} (shape {space.shape}); make the env return what it declares, "
                             "or declare what it returns")
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
            raise ValueError(f"{label}: {where} returned an observation of dtype {arr.dtype}, not numbers; fix the "
                             "env's observations")
    elif not space.contains(obs):
        raise ValueError(f"{label}: {where} returned an observation outside its observation_space={space}; make "
                         "the env return what it declares, or declare what it returns")


def check_env_returns(label: str, env: Any) -> None:
    """``env.reset(seed=0)`` works and returns an observation of the declared space's shape; so does one step,
    when it works (an env whose step raises is a run-time failure of its members, not bad input)."""
    import warnings

    with warnings.catch_warnings():  # gymnasium's env checker says the same in several lines
        warnings.simplefilter("ignore")
        try:
            obs, _ = env.reset(seed=0)
        except Exception as exc:  # noqa: BLE001 -- whatever the env raises, named with the fix
            raise ValueError(f"{label}: reset() raised {type(exc).__name__}: {exc}; fix the env (or its "
                             "env_kwargs)") from exc
        _check_obs(label, "reset()", obs, env.observation_space)
        try:
            env.action_space.seed(0)
            out = env.step(env.action_space.sample())
        except Exception:  # noqa: BLE001
            return
        _check_obs(label, "step()", out[0], env.observation_space)
