"""``--dry-run``: estimate a run's wall time from a short measured burst, and its memory."""
from __future__ import annotations

import os
import time

from rlpop.streams import member_seed
from rlpop.experiment import Experiment


def estimate(exp: Experiment, burst_steps: int | None = None, backend: str | None = None) -> str:
    """Train briefly here, then scale. Batched engine: a shard of up to 4 members for one rollout each,
    and the population's steps at that aggregate rate (larger batches are faster per member, so this
    errs long). Per-member engine: one worker, ``min(workers, cores)`` at a time on Ray, one inline."""
    from rlpop.backends.base import WorkerSpec
    from rlpop.fit import estimate as memory

    backend = backend or exp.backend
    strat = exp.build_strategy()
    slots = list(strat.layout())
    n = len(slots)
    cores = os.cpu_count() or 1
    total = n * exp.total_steps
    from rlpop.agents import use_batched

    batched = use_batched(exp.agent.learner, exp.engine)
    specs = [WorkerSpec(s.id, exp.agent.learner, exp.env, {**exp.agent.hparams, **strat.initial_hparams(s)},
                        member_seed(exp.seed, s.id), dict(exp.env_kwargs)) for s in slots[:4 if batched else 1]]
    if batched:
        from rlpop.shard import BatchShard as Shard
    else:
        from rlpop.shard import MemberShard as Shard
    shard = Shard(specs)
    ids = [s.id for s in specs]
    try:
        warm = shard.train(ids, 1)  # warm-up: envs, first rollout and update
        steps = burst_steps or (1 if batched else min(exp.eval_steps, 20_000))
        t0 = time.perf_counter()
        reps = shard.train(ids, steps)
        dt = time.perf_counter() - t0
    finally:
        shard.close()
    burst = sum(reps[i].steps - warm[i].steps for i in ids)
    sps = max(burst / dt if dt > 0 else float("nan"), 1e-9)
    if batched:
        rate, how = sps, f"a shard of {len(ids)} members"
    else:
        parallel = 1 if backend == "inline" else min(n, cores)
        rate, how = sps * parallel, f"one worker x {parallel} at a time"
    hours = total / rate / 3600
    mem = memory(exp, backend)
    return (f"  measured: {sps:,.0f} actor steps/s for {how} on this machine ({cores} cores)\n"
            f"  estimate: {total:,} worker-steps at ~{rate:,.0f} steps/s -> ~{hours:,.2f} h wall time "
            f"on the {backend} backend ({'batched' if batched else 'per-member'} engine)"
            f"{' (FIRE evaluators are idle part of the time, so it runs somewhat faster)' if exp.method == 'fire' else ''}\n"
            f"  memory: ~{mem.total_mb / 1024:.1f} GB ({mem.detail})")
