"""The one place environments are registered.

``register_env(name, creator)`` registers an env with gymnasium *and* with
Ray's registry (now if Ray is imported, else when a Ray backend starts: see
``register_with_ray``). Every process that builds an env (env processes,
Ray workers) calls :func:`make_env`, which lives in this module, so importing
it has already run the registrations in ``rlpop.envs`` -- a custom env never
fails with "unregistered env" in a remote process.

A user's own env plugs in three ways:

* gymnasium's ``"my_pkg.my_module:MyEnv-v0"`` id (the module registers it on import);
* one ``register_env("MyEnv-v0", "my_pkg.my_module:MyEnv")`` line in ``envs/__init__.py``;
* an entry point in the ``rlpop.envs`` group of an installed package, pointing
  at a function that calls ``register_env``.

A ``register_env`` call made anywhere else -- at the top of an experiment file,
the natural place with an installed rlpop -- is shipped to every process
started after it: it is recorded in the ``RLPOP_ENV_REGISTRATIONS``
environment variable, which spawned actor and env processes inherit and Ray
workers receive through the backend's runtime environment, and importing
``rlpop.envs`` replays it there (:func:`replay_shipped`).
"""
from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
from importlib.metadata import entry_points
from typing import Any, Callable

import gymnasium as gym

EnvCreator = Callable[..., gym.Env] | str

#: envs registered through rlpop (name -> creator)
_RLPOP_ENVS: dict[str, EnvCreator] = {}
_ray_registered: set[str] = set()


def register_env(name: str, creator: EnvCreator, *, max_episode_steps: int | None = None,
                 **default_kwargs: Any) -> None:
    """Register ``name`` with gymnasium and Ray.

    ``creator`` is a callable returning a ``gymnasium.Env`` (an Env class
    works) or a ``"module:attr"`` string; ``default_kwargs`` go to it.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("register_env: name must be a non-empty string like 'MyEnv-v0'")
    if name in gym.registry:
        gym.registry.pop(name)
    gym.register(id=name, entry_point=creator, max_episode_steps=max_episode_steps,
                 kwargs=default_kwargs)
    _RLPOP_ENVS[name] = creator
    _ship(name, creator, max_episode_steps, default_kwargs)
    if sys.modules.get("ray") is not None:  # Ray imported here (None: hidden or failed to import)
        register_with_ray([name])


#: the environment variable that carries registrations to processes started later
SHIP_VAR = "RLPOP_ENV_REGISTRATIONS"


#: the module name ``rlpop.run`` gives an experiment file it loads (no other process can import it)
EXPERIMENT_MODULE_PREFIX = "rlpop_experiment_"


def _importable(creator: EnvCreator) -> str | None:
    """``"module:attr"`` for a creator another process can import (None for lambdas, local classes and classes
    defined in the experiment file itself)."""
    if isinstance(creator, str):
        return creator
    module, qual = getattr(creator, "__module__", None), getattr(creator, "__qualname__", "")
    if not module or "<" in qual or module == "__main__" or module.startswith(EXPERIMENT_MODULE_PREFIX):
        return None
    return f"{module}:{qual}"


#: the envs ``rlpop.envs`` registers on import (every process has them: nothing to ship)
_BUILTINS: set[str] = set()


def register_builtin(name: str, creator: str) -> None:
    """Register one of rlpop's own envs (``rlpop/envs/__init__.py``): every import of ``rlpop.envs`` does it."""
    _BUILTINS.add(name)
    register_env(name, creator)


def _ship(name: str, creator: EnvCreator, max_episode_steps: int | None, kwargs: dict[str, Any]) -> None:
    path = _importable(creator)
    if path is None or name in _BUILTINS:
        return  # rlpop's own envs are registered by every import of rlpop.envs anyway
    try:
        entry = json.dumps({"entry_point": path, "max_episode_steps": max_episode_steps, "kwargs": kwargs})
    except TypeError:
        return  # kwargs that JSON cannot carry: the env must be registered where it is built
    shipped = json.loads(os.environ.get(SHIP_VAR) or "{}")
    shipped[name] = json.loads(entry)
    os.environ[SHIP_VAR] = json.dumps(shipped, sort_keys=True)


def unshippable(env_id: str) -> str | None:
    """Why ``env_id`` cannot reach other processes (Ray workers, spawned env processes), or None.

    An env registered in this process with a creator that cannot be imported by name elsewhere (a lambda, a
    class defined in the experiment file or in ``__main__``) or with kwargs JSON cannot carry is known here
    only; every other process would fail with "unknown env id"."""
    name = env_id.split(":", 1)[1] if ":" in env_id else env_id
    if ":" in env_id or name not in _RLPOP_ENVS:
        return None  # imported by module name, or registered by gymnasium / rlpop.envs / an entry point
    creator = _RLPOP_ENVS[name]
    path = _importable(creator)
    if path is not None and path.startswith("rlpop."):
        return None
    if name in json.loads(os.environ.get(SHIP_VAR) or "{}"):
        return None
    what = getattr(creator, "__qualname__", repr(creator))
    return (f"env {name!r} is registered with {what}, which other processes cannot import (a lambda, or code "
            f"in the experiment file itself); put the env class in a module beside the experiment file and "
            f"register it by name: register_env({name!r}, 'my_envs:MyEnv')")


def replay_shipped() -> list[str]:
    """Register the envs a parent process registered at run time (see the module docstring)."""
    names = []
    for name, r in json.loads(os.environ.get(SHIP_VAR) or "{}").items():
        if name not in _RLPOP_ENVS:
            register_env(name, r["entry_point"], max_episode_steps=r.get("max_episode_steps"), **r.get("kwargs", {}))
            names.append(name)
    return names


def register_with_ray(names: list[str] | None = None) -> None:
    """Register rlpop's envs with Ray's registry (``ray.tune.registry``)."""
    from ray.tune.registry import register_env as ray_register_env

    for name in names or list(_RLPOP_ENVS):
        if name in _ray_registered:
            continue
        ray_register_env(name, _RayCreator(name))
        _ray_registered.add(name)


class _RayCreator:
    """Picklable creator for Ray's registry: imports rlpop.envs remotely first."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, config: dict | None = None) -> gym.Env:
        return make_env(self.name, **dict(config or {}))


def registered() -> list[str]:
    """Env ids gymnasium knows (rlpop's own first)."""
    ours = sorted(_RLPOP_ENVS)
    return ours + sorted(k for k in gym.registry if k not in _RLPOP_ENVS)


def _unknown_env_message(env_id: str) -> str:
    """One line: the id, close matches, what is registered, and the ways to register."""
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    others = sum(1 for k in gym.registry if k not in _RLPOP_ENVS)
    return (
        f"unknown env id {env_id!r} in this process.{hint} Registered by rlpop: "
        f"{', '.join(sorted(_RLPOP_ENVS)) or '(none)'}; {others} more from gymnasium "
        "(python -c 'import rlpop.envs as e; print(e.registered())'). To add your own env: use the id "
        "'my_pkg.my_module:MyEnv-v0' (the module registers it), call register_env('MyEnv-v0', "
        "'my_module:MyEnv') at the top of the experiment file or in envs/__init__.py, or expose a function in "
        "the 'rlpop.envs' entry-point group of your package."
    )


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """Resolve ``env_id`` to a gymnasium spec or raise ``ValueError`` listing what is registered."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError("env: expected a gymnasium env id string such as 'Hopper-v5'")
    if ":" in env_id:
        module, _, _ = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"env {env_id!r}: cannot import module {module!r} ({exc}). "
                             "Check that the package is installed and on sys.path.") from exc
    name = env_id.split(":", 1)[1] if ":" in env_id else env_id
    try:
        return gym.spec(name)
    except gym.error.Error as exc:
        raise ValueError(_unknown_env_message(name)) from exc


#: the env_kwargs key that carries an experiment's ``env_wrappers`` to every process that builds its envs
WRAPPERS_KEY = "rlpop_env_wrappers"


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """Build one env by id (``"pkg.module:Id-v0"`` accepted); unknown ids list what is registered.

    ``kwargs[WRAPPERS_KEY]`` (an experiment's normalised ``env_wrappers``: ``[["module:Wrapper", {kwargs}], ...]``)
    wraps the env, the first listed innermost; every other keyword goes to the env."""
    wrappers = kwargs.pop(WRAPPERS_KEY, None) or ()
    spec = check_env_id(env_id)
    env = gym.make(spec, **kwargs)
    for path, wkw in wrappers:
        env = load_object(path)(env, **wkw)
    return env


def load_object(path: str) -> Any:
    """The object at ``"module:attr"`` (dotted attributes allowed)."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def normalize_wrappers(items: Any, field: str = "env_wrappers") -> list[list[Any]]:
    """``env_wrappers`` as ``[["module:Wrapper", {kwargs}], ...]``, checked; ``ValueError`` (one line) otherwise.

    Each item is a wrapper -- a ``"module:Class"`` string or a class/function importable by name (defined in a
    module, not in the experiment file itself) called as ``wrapper(env, **kwargs)`` -- or a ``(wrapper, kwargs)``
    pair. Everything becomes strings and plain values, so it reaches env processes and Ray workers."""
    if isinstance(items, (str, dict)) or not isinstance(items, (list, tuple)):
        raise ValueError(f"{field}={items!r}: give a list of wrappers, e.g. "
                         "['gymnasium.wrappers:FlattenObservation', ('gymnasium.wrappers:TimeLimit', "
                         "{'max_episode_steps': 200})]")
    out = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        wrapper, wkw = (item if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], dict)
                        else (item, {}))
        path = _importable(wrapper) if not isinstance(wrapper, str) and callable(wrapper) else wrapper
        if not isinstance(path, str) or ":" not in path:
            if callable(wrapper):
                raise ValueError(f"{where}={wrapper!r} cannot be imported by name in other processes (a lambda, or "
                                 "code in the experiment file itself); put it in a module beside the experiment "
                                 "file and give 'my_wrappers:MyWrapper'")
            raise ValueError(f"{where}={item!r}: give 'module:Wrapper', a wrapper class, or (wrapper, {{kwargs}})")
        try:
            obj = load_object(path)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{where}={path!r}: cannot load it ({type(exc).__name__}: {exc})") from exc
        if not callable(obj):
            raise ValueError(f"{where}={path!r} is a {type(obj).__name__}, not a wrapper (called as wrapper(env, "
                             "**kwargs))")
        try:
            json.dumps(wkw)
        except TypeError as exc:
            raise ValueError(f"{where}: kwargs {wkw!r} must be plain values (numbers, strings, lists, dicts) to "
                             f"reach other processes ({exc})") from exc
        out.append([path, dict(wkw)])
    return out


def load_entry_points() -> list[str]:
    """Run the ``rlpop.envs`` entry points of installed packages; returns their names."""
    loaded = []
    for ep in entry_points(group="rlpop.envs"):
        fn = ep.load()
        if callable(fn):
            fn()
        loaded.append(ep.name)
    return loaded
