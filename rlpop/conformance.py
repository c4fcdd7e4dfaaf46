"""Spaces a learner can take, checked at spec time on one env built as the run will build it (wrappers included).

rlpop's PPO and V-MPO are MLPs over a flat Box observation, with Discrete or Box actions. Anything else is
refused in one line naming the space and the gymnasium wrapper that fixes it (``env_wrappers`` applies it in
every process). A learner of your own may declare ``check_spaces(observation_space, action_space)`` (a class or
module function raising ``ValueError``); adapters (SB3, RLlib) check their own spaces.
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from gymnasium import spaces

#: learners whose network is rlpop's MLP ActorCritic
MLP_LEARNERS = ("ppo", "vmpo")

FLATTEN = "gymnasium.wrappers:FlattenObservation"


def _short(space: Any, limit: int = 90) -> str:
    text = " ".join(str(space).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fix(wrapper: str) -> str:
    return f"add env_wrappers=[{wrapper!r}] to the experiment"


def mlp_spaces(obs: spaces.Space, act: spaces.Space, learner: str) -> None:
    """``ValueError`` unless ``obs`` is a flat Box (or one an MLP takes flattened) and ``act`` Discrete or Box."""
    who = f"learner {learner!r} (an MLP)"
    if isinstance(obs, (spaces.Dict, spaces.Tuple, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        raise ValueError(f"observation space {_short(obs)}: {who} takes a flat Box; {_fix(FLATTEN)} "
                         "(it flattens Dict/Tuple and one-hot encodes discrete parts)")
    if isinstance(obs, spaces.Box):
        image = len(obs.shape) >= 3 or (len(obs.shape) == 2 and obs.dtype == np.uint8)
        if image:
            raise ValueError(f"observation space {_short(obs)} looks like an image: {who} has no convolutions; "
                             f"{_fix(FLATTEN)} for small images (with gymnasium.wrappers:ResizeObservation / "
                             "GrayscaleObservation first), or a learner of your own with a CNN (docs/learners.md)")
    else:
        raise ValueError(f"observation space {_short(obs)}: {who} takes a flat Box and gymnasium has no wrapper "
                         "that flattens this one; write a gymnasium.ObservationWrapper to a Box and list it in "
                         "env_wrappers")
    if isinstance(act, spaces.Discrete):
        if int(act.start) != 0:
            raise ValueError(f"action space {_short(act)}: {who} acts in 0..n-1; add env_wrappers=[("
                             "'gymnasium.wrappers:TransformAction', ...)] shifting by start, or register the env "
                             "with start=0")
        return
    if isinstance(act, spaces.Box):
        return
    kind = type(act).__name__
    sb3 = f", or use sb3:PPO, which takes {kind} actions" if kind in ("MultiDiscrete", "MultiBinary") else ""
    raise ValueError(f"action space {_short(act)}: {who} takes Discrete or Box actions, not {kind}; map a Discrete(n) "
                     "or Box action to it with gymnasium.wrappers:TransformAction(env, func, action_space) -- a "
                     f"wrapper of your own listed in env_wrappers (gymnasium has no ready-made one){sb3}")


def check_spaces(learner: str, env: Any) -> None:
    """The learner's space rules on a built env (``ValueError``, one line, naming the space and the fix)."""
    obs, act = env.observation_space, env.action_space
    if learner in MLP_LEARNERS:
        mlp_spaces(obs, act, learner)
        return
    from rlpop.agents import learner_class

    cls = learner_class(learner)
    fn = getattr(cls, "check_spaces", None) or getattr(importlib.import_module(cls.__module__), "check_spaces", None)
    if fn is not None:
        fn(obs, act)
