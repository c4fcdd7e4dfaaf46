"""Will a run fit this machine? Its memory, estimated before anything starts, and checked.

The estimate counts processes and, on the batched engine, what each member
holds: its stacked parameters (weights, Adam moments; V-MPO also a target
network), one rollout (observations, next observations and their normalised
and shuffled copies) and its envs. Per-process figures were measured on the
development machine (torch 2.13 CPU, gymnasium 1.2.2, MuJoCo, Ray 2.60): a
learner process with its imports and a few envs ~450 MB; Ray's own daemons
~900 MB; a spawned env/actor process ~350 MB.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

PROCESS_MB = 450.0
RAY_MB = 900.0
ACTOR_MB = 350.0
LEARNER_MB = 40.0     # a per-member learner in a shared process: nets, optimiser, a rollout, a few envs
ENV_MB = 1.0          # one MuJoCo env (EnvPool: ~0.75 MB for Humanoid-v5)
ROLLOUT_COPIES = 6    # raw obs/next_obs, normalised, shuffled, and the member-major copies of an update


@dataclass
class MemoryPlan:
    total_mb: float
    processes: int
    detail: str


def available_mb() -> float | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _shapes(exp) -> tuple[int, int] | None:
    """(observation size, action size) of the experiment's env, or None for learners without one."""
    if not exp.env:
        return None
    try:
        from rlpop.envs import make_env

        env = make_env(exp.env, **exp.env_kwargs)
        obs = int(math.prod(env.observation_space.shape or (1,)))
        space = env.action_space
        act = int(space.n) if hasattr(space, "n") else int(math.prod(space.shape or (1,)))
        env.close()
        return obs, act
    except Exception:  # noqa: BLE001 -- the estimate is best effort; validation reports bad envs
        return None


def estimate(exp, backend: str, cpus: int | None = None) -> MemoryPlan:
    """The run's memory on ``backend`` ('inline' or 'ray') with ``cpus`` CPUs in the cluster."""
    from rlpop.agents import learner_defaults
    from rlpop.agents import use_batched

    cpus = cpus or len(os.sched_getaffinity(0))
    workers = len(list(exp.build_strategy().layout()))
    hp = {**learner_defaults(exp.agent.learner), **exp.agent.hparams}
    actors = int(hp.get("num_actors", 0) or 0)
    ray_mb = RAY_MB if backend == "ray" else 0.0
    batched = use_batched(exp.agent.learner, exp.engine)
    if not batched:
        if backend == "ray":  # a process per worker, each with its own actor processes
            total = ray_mb + workers * (PROCESS_MB + actors * ACTOR_MB)
            return MemoryPlan(total, workers * (1 + actors),
                              f"{workers} worker processes x (1 + {actors} actor processes) + Ray, the per-member engine")
        # inline: one process holds every learner; each learner has its own actor processes
        total = PROCESS_MB + workers * (LEARNER_MB + actors * ACTOR_MB)
        return MemoryPlan(total, 1 + workers * actors,
                          f"1 process with {workers} learners x {LEARNER_MB:.0f} MB + {workers * actors} actor "
                          "processes, the per-member engine")
    if backend == "ray":  # as RayBackend.start (GPUs are not counted here: a CPU machine is what is checked)
        shards = math.ceil(workers / exp.shard_size) if exp.shard_size else max(1, cpus // 2)
    else:
        shards = math.ceil(workers / exp.shard_size) if exp.shard_size else 1
    shards = min(shards, workers)
    shapes = _shapes(exp) or (64, 8)
    obs, act = shapes
    hidden = list(hp.get("hidden", (64, 64))) or [obs]
    dims = [obs, *hidden]
    params = sum(a * b + b for a, b in zip(dims, dims[1:]))
    params = 2 * params + hidden[-1] * (act + 1) + act + 1 + act   # actor and critic trunks, heads, log-std
    copies = 6 if exp.agent.learner == "vmpo" else 4                 # weights, moments (+ target, duals)
    n_envs = max(1, actors) * int(hp.get("envs_per_actor", 1))
    rollout = int(hp.get("rollout_steps", 2048)) * (2 * obs + act + 8) * 4 * ROLLOUT_COPIES
    per_member = (params * 4 * copies + rollout) / 2**20 + n_envs * ENV_MB
    env_procs = 0 if _envpool(exp, hp) else actors
    total = ray_mb + shards * (PROCESS_MB + env_procs * ACTOR_MB) + workers * per_member
    return MemoryPlan(total, shards * (1 + env_procs),
                      f"{shards} shard process(es){f' x {env_procs} env processes' if env_procs else ''}"
                      f"{' + Ray' if ray_mb else ''} + {workers} members x {per_member:.0f} MB, the batched engine")


def _envpool(exp, hp: dict) -> bool:
    from rlpop.agents.envbank import uses_envpool

    return bool(exp.env) and uses_envpool(exp.env, exp.env_kwargs, hp.get("env_backend", "auto"))


def check(exp, backend: str, cpus: int | None = None) -> MemoryPlan:
    """Raise ValueError when the estimate exceeds 90% of the memory available now."""
    plan = estimate(exp, backend, cpus)
    avail = available_mb()
    if avail is not None and plan.total_mb > 0.9 * avail:
        fix = ("shrink the population (strategy.population, subpop_size, evaluators) or "
               "agent.hparams.num_actors, or run on a Ray cluster (--address)")
        raise ValueError(f"this run needs about {plan.total_mb / 1024:.1f} GB ({plan.detail}) but this machine has "
                         f"{avail / 1024:.1f} GB available: {fix}; --no-fit-check skips this check")
    return plan
