"""FIRE PBT on the deceptive toy: the strategy's decision cost, and RS vs PBT vs FIRE.

    python benchmarks/fire_toy.py [--quick] [--out PATH] [--seeds N] [--only cost|compare]

Writes ``benchmarks/results/fire_toy.json`` (with :func:`_common.machine_info`).

1. **Decision cost** (``decision_cost``). ``FirePBT.decide`` timed inside a
   real run (``rlpop.controller.Controller``, inline backend, run directory in
   a temp folder) of the paper's RL layout: 50 workers = 2 sub-populations of
   18 members + 14 evaluators, on the toy learner (``rlpop.toy.NoisyQuadratic``,
   so the curves are real noisy training curves and the run takes seconds).
   Q every 10 steps, ready every 100 (10 curve points per ready interval, as
   checks of evaluators), ``max_eval_steps`` = 10 ready intervals (the paper's
   6e8 / 6e7), 50 ready intervals in all. A *ready step* is a ``decide`` call at
   which the members are ready (within-sub-population PBT, parent fitness from
   all evaluator curves, evaluator checks): the expensive one. Reported per
   ready step: wall time and the calling thread's CPU time (``time.thread_time``:
   on a shared, loaded machine the wall time also counts time spent waiting
   for a core), median and p95, number of GP fits and their curve lengths;
   the same for the other ``decide`` calls. Two modes, same run otherwise:

   * ``cached`` -- the strategy as shipped: GP fits kept across ``decide``
     calls, an unchanged curve not refitted (``SmoothingCache``);
   * ``uncached`` -- every curve refitted at every ``decide`` (a
     ``SmoothingCache`` that forgets everything between calls).

2. **RS vs PBT vs FIRE** (``comparison``). ``experiments/toy_rs.py``,
   ``toy_pbt.py``, ``toy_fire.py`` -- 16 workers each, the same lr space,
   budget and Q interval -- over ``--seeds`` seeds, run through
   ``rlpop.run.execute`` (the CLI's code path) into temp run directories and
   read back from ``curves.csv`` with pandas. Per method: median and IQR over
   seeds of the best final Q (each member's last Q, best over members; for
   FIRE also over P1 only, the greedy sub-population whose weights are the
   answer), FIRE's win count against PBT, and the learning-rate schedule:
   per seed, the median lr over PBT's members (and FIRE's P2, and P1) at each
   evaluation step, and the first step at which it falls below a threshold.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402

from rlpop import curves  # noqa: E402
from rlpop.backends import make_backend  # noqa: E402
from rlpop.controller import Controller  # noqa: E402
from rlpop.experiment import FIRE, Agent, Experiment  # noqa: E402
from rlpop.hparams import LogUniform  # noqa: E402
from rlpop.store import RunDir  # noqa: E402
from rlpop.strategies import fire as fire_module  # noqa: E402

# -------------------------------------------------------------------------------------- decision cost

COST_READY_STEPS = 100
COST_EVAL_STEPS = 10


def cost_experiment(ready_intervals: int, seed: int = 0) -> Experiment:
    """The paper's RL layout (18 + 18 members, 14 evaluators) on the toy learner."""
    return Experiment(
        name="fire_cost",
        env=None,
        agent=Agent("toy"),
        space={"lr": LogUniform(0.05, 1.0, factors=(0.5, 0.8, 1.25, 2.0), bounds=(1e-4, 1.5))},
        strategy=FIRE(subpops=2, subpop_size=18, evaluators=14, ready_steps=COST_READY_STEPS,
                      max_eval_steps=10 * COST_READY_STEPS, min_steps_before_eval=(0,)),
        total_steps=ready_intervals * COST_READY_STEPS,
        eval_steps=COST_EVAL_STEPS,
        seed=seed,
    )


class _ForgetfulCache(fire_module.SmoothingCache):
    """The ``uncached`` mode: no fit survives a ``decide`` call (cleared at the start of each)."""

    def forget_except(self, keep: set[int]) -> None:
        super().forget_except(set())


def _summary(values: list[float], scale: float = 1e3) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, dtype=float) * scale
    return {"median": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2),
            "mean": round(float(np.mean(v)), 2), "max": round(float(np.max(v)), 2), "n": int(v.size)}


def decision_cost(mode: str, ready_intervals: int, seed: int = 0, replays: int = 5) -> dict[str, Any]:
    """Time every ``FirePBT.decide`` of one toy run; split ready steps from the other calls.

    Each ready step is also replayed ``replays`` times from a deep copy of the
    strategy as it was before the call (same view, same cache): the fastest
    replay is the step's cost with the least interference from other processes.
    """
    if mode not in ("cached", "uncached"):
        raise ValueError(f"mode={mode!r}: use 'cached' or 'uncached'")
    exp = cost_experiment(ready_intervals, seed)
    fits: list[int] = []
    real_smooth = curves.smooth

    def counted_smooth(x, y):
        fits.append(len(y))
        return real_smooth(x, y)

    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp, exp.name)
        backend = make_backend("inline", None)
        try:
            ctl = Controller(exp, run, backend)
            ctl.start()
            strategy = ctl.strategy
            if mode == "uncached":
                strategy._smoothing = _ForgetfulCache()
            decide = strategy.decide
            every = exp.strategy.ready_steps // exp.eval_steps

            def timed(view):
                ready = ctl.round % every == 0
                snapshot = copy.deepcopy(strategy.__dict__) if ready and replays else None
                fits.clear()
                w0, c0 = time.perf_counter(), time.thread_time()
                out = decide(view)
                wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
                record = {"round": ctl.round, "ready": ready, "wall": wall, "cpu": cpu, "fits": len(fits),
                          "fit_lengths": list(fits), "kinds": [d.kind for d in out]}
                if snapshot is not None:  # the same decide again, from the same state: its cost without load
                    snapshot.pop("decide", None)
                    best = math.inf
                    for _ in range(replays):
                        clone = object.__new__(type(strategy))
                        clone.__dict__.update(copy.deepcopy(snapshot))
                        w0 = time.perf_counter()
                        again = type(strategy).decide(clone, view)
                        best = min(best, time.perf_counter() - w0)
                        if again != out:
                            raise RuntimeError("a replayed decide differs from the original: not deterministic")
                    record["replay_min"] = best
                records.append(record)
                return out

            strategy.decide = timed
            curves.smooth = counted_smooth
            t0 = time.perf_counter()
            ctl.run()
            total = time.perf_counter() - t0
        finally:
            curves.smooth = real_smooth
            backend.close()
    ready = [r for r in records if r["ready"] and r["round"] >= every]
    other = [r for r in records if not r["ready"]]
    lengths = [n for r in ready for n in r["fit_lengths"]]
    return {
        "mode": mode,
        "workers": len(ctl.records),
        "decide_calls": len(records),
        "ready_steps": len(ready),
        "run_wall_s": round(total, 2),
        "ready_step_ms": {"wall": _summary([r["wall"] for r in ready]), "cpu": _summary([r["cpu"] for r in ready]),
                          "fastest_of_replays": _summary([r["replay_min"] for r in ready if "replay_min" in r])},
        "other_decide_ms": {"wall": _summary([r["wall"] for r in other]), "cpu": _summary([r["cpu"] for r in other])},
        "fits_per_ready_step": _summary([r["fits"] for r in ready], scale=1.0),
        "fitted_curve_length": _summary(lengths, scale=1.0),
        "decisions": {k: sum(r["kinds"].count(k) for r in records)
                      for k in ("exploit", "assign", "success", "stop")},
        "load_average_after": load_average(),
    }


# -------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer ready intervals and seeds (a smoke run)")
    p.add_argument("--out", default=str(RESULTS_DIR / "fire_toy.json"))
    p.add_argument("--seeds", type=int, default=10, help="seeds per method in the comparison (default 10)")
    p.add_argument("--only", choices=["cost", "compare"], help="run one part only")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"machine": machine_info()}
    if args.only in (None, "cost"):
        intervals = 10 if args.quick else 50
        out["decision_cost"] = {
            "setup": {"subpops": 2, "subpop_size": 18, "evaluators": 14, "eval_steps": COST_EVAL_STEPS,
                      "ready_steps": COST_READY_STEPS, "max_eval_steps": 10 * COST_READY_STEPS,
                      "ready_intervals": intervals, "learner": "toy (NoisyQuadratic)"},
            "cached": decision_cost("cached", intervals),
            "uncached": decision_cost("uncached", intervals),
        }
        for mode in ("cached", "uncached"):
            r = out["decision_cost"][mode]
            print(f"{mode:6s} ready step ms: fastest replay {r['ready_step_ms']['fastest_of_replays']} | cpu "
                  f"{r['ready_step_ms']['cpu']} | wall {r['ready_step_ms']['wall']} | fits {r['fits_per_ready_step']}",
                  flush=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
