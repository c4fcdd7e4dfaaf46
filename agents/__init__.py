"""rlpop's learners (imported as ``rlpop.agents``).

``learner_class(name)`` finds one by name -- ``"ppo"``, ``"vmpo"``, ``"toy"`` --, by adapter (``"sb3:PPO"``,
``"rllib:PPO"``), or by ``"module:Class"`` for a learner of your own that follows :class:`rlpop.agents.base.Learner`.
PPO and V-MPO are batched learners (K >= 1 members per process: :class:`rlpop.agents.batched_base.BatchedLearner`,
hosted by a shard); ``make_learner`` builds one member of any other learner.
"""
from __future__ import annotations

import importlib
from typing import Any

#: learners that run batched (K >= 1 members in one process, one batched update): their only engine
BATCHED: dict[str, str] = {
    "ppo": "rlpop.agents.batched_ppo:BatchedPPO",
    "vmpo": "rlpop.agents.batched_vmpo:BatchedVMPO",
}

LEARNERS: dict[str, str] = {
    **BATCHED,
    "toy": "rlpop.toy:NoisyQuadratic",
}


def batched_learner_class(name: str) -> type | None:
    """The batched implementation of learner ``name``, or None when it has none."""
    path = BATCHED.get(name)
    if path is None:
        return None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def use_batched(learner: str | None, engine: str) -> bool:
    """Whether members of ``learner`` run on the batched engine (``engine``: 'auto', 'batched' or 'member').
    A batched learner has no other engine: ``engine='member'`` for it is refused."""
    if engine not in ("auto", "batched", "member"):
        raise ValueError(f"engine={engine!r}: use 'auto' (batched where the learner has it), 'batched' or 'member'")
    has = learner in BATCHED
    if engine == "member" and has:
        raise ValueError(f"engine='member': learner {learner!r} runs on the batched engine only (a single run is a "
                         "population of one; agent.hparams.num_actors gives env processes); drop engine='member'")
    if learner is None or engine == "member":
        return False
    if engine == "batched" and not has:
        raise ValueError(f"engine='batched': learner {learner!r} has no batched implementation "
                         f"(batched: {sorted(BATCHED)}); "
                         "use engine='auto' or 'member'")
    return has


#: library adapters, by prefix: ``"sb3:PPO"`` -> ``adapter_class("PPO")`` of the module (imported lazily, so
#: rlpop starts without stable-baselines3 or RLlib)
ADAPTERS: dict[str, str] = {
    "sb3": "rlpop.agents.sb3",
    "rllib": "rlpop.agents.rllib",
}


def learner_class(name: str) -> type:
    """The learner class for a registered name, an adapter (``"sb3:PPO"``, ``"rllib:PPO"``) or a
    ``"module:Class"`` path."""
    prefix, colon, algo = name.partition(":")
    if colon and prefix in ADAPTERS:
        from rlpop.extras import require

        require(prefix, f"agent.learner={name!r}")  # the adapter's library, named with its extra
        try:
            module = importlib.import_module(ADAPTERS[prefix])
        except ImportError as exc:
            raise ValueError(f"agent.learner={name!r}: the {prefix} adapter needs its library ({exc}); "
                             f"pip install 'rlpop[{prefix}]'") from exc
        return module.adapter_class(algo)  # raises ValueError naming the algorithms it knows
    path = LEARNERS.get(name, name)
    if ":" not in path:
        raise ValueError(f"agent.learner={name!r} is not a known learner; use one of {sorted(LEARNERS)} "
                         "or 'my_pkg.my_module:MyLearner'")
    module, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"agent.learner={name!r}: cannot load {path!r} ({exc})") from exc
    if not hasattr(cls, "mutable_hparams"):
        raise ValueError(f"agent.learner={name!r}: {path} lacks the class attribute 'mutable_hparams' "
                         "(see rlpop.agents.base.Learner)")
    return cls


def learner_defaults(name: str) -> dict[str, Any]:
    """All hyperparameters a learner accepts, with their defaults."""
    cls = learner_class(name)
    module = importlib.import_module(cls.__module__)
    return dict(getattr(cls, "DEFAULTS", None) or getattr(module, "DEFAULTS", {}))


def make_learner(name: str, env_id: str | None, hparams: dict[str, Any], seed: int,
                 env_kwargs: dict[str, Any] | None = None):
    """One member of a learner that is not batched (the per-member engine's learner)."""
    if name in BATCHED:
        raise ValueError(f"agent.learner={name!r} is a batched learner: build "
                         f"{BATCHED[name].replace(':', '.')}(env_id, [hparams], [seed]) (a population of one)")
    cls = learner_class(name)
    if getattr(cls, "needs_env", True):
        return cls(env_id, hparams, seed=seed, env_kwargs=env_kwargs or {})
    return cls(hparams=hparams, seed=seed, **(env_kwargs or {}))


def learner_rules(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The learner's value rules (``rlpop.agents.hparam_rules.Rule`` per hyperparameter) for its resolved
    ``hparams``: a ``hparam_rules(hp)`` function on the class or in its module; {} when it declares none."""
    cls = learner_class(name)
    fn = getattr(cls, "hparam_rules", None) or getattr(importlib.import_module(cls.__module__), "hparam_rules", None)
    return dict(fn(hparams)) if fn is not None else {}


def check_learner_layout(name: str, hparams: dict[str, Any]) -> None:
    """Cross-field checks a learner declares (``check_layout(hp)``, e.g. rollout_steps divisible by the envs)."""
    cls = learner_class(name)
    fn = getattr(cls, "check_layout", None) or getattr(importlib.import_module(cls.__module__), "check_layout", None)
    if fn is not None:
        fn(hparams)
