"""``--dry-run``: estimate a run's wall time from a short measured burst."""
from __future__ import annotations

import os
import time

from rlpop.experiment import Experiment


def estimate(exp: Experiment, burst_steps: int | None = None, backend: str | None = None) -> str:
    """Train one worker briefly here, then scale: every worker trains the same
    number of steps, ``min(workers, cores)`` at a time."""
    from rlpop.worker import Worker

    strat = exp.build_strategy()
    slots = list(strat.layout())
    hp = {**exp.agent.hparams, **strat.initial_hparams(slots[0])}
    w = Worker(0, exp.agent.learner, exp.env, hp, exp.seed, exp.env_kwargs)
    try:
        w.train(1)  # warm-up: starts actors, first rollout
        steps = burst_steps or min(exp.eval_steps, 20_000)
        t0 = time.perf_counter()
        rep = w.train(steps)
        dt = time.perf_counter() - t0
    finally:
        w.close()
    sps = (rep.steps - 0) / dt if dt > 0 else float("nan")
    sps = max(sps, 1e-9)
    cores = os.cpu_count() or 1
    n = len(slots)
    total = n * exp.total_steps
    parallel = 1 if exp.backend == "inline" else min(n, cores)  # inline trains one worker at a time
    hours = total / (sps * parallel) / 3600
    return (f"  measured: {sps:,.0f} actor steps/s for one worker on this machine ({cores} cores)\n"
            f"  estimate: {total:,} worker-steps at ~{sps * parallel:,.0f} steps/s -> ~{hours:,.2f} h wall time "
            f"on the {exp.backend} backend"
            f"{' (FIRE evaluators are idle part of the time, so it runs somewhat faster)' if exp.method == 'fire' else ''}")
