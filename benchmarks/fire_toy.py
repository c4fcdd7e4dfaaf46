"""FIRE PBT on the deceptive toy: the strategy's decision cost, and RS vs PBT vs FIRE.

    python benchmarks/fire_toy.py [--quick] [--out PATH] [--seeds N] [--only cost|compare] [--replays K]

Writes ``benchmarks/results/fire_toy.json`` (with :func:`_common.machine_info`).

1. **Decision cost** (``decision_cost``). ``FIREStrategy.decide`` timed inside a
   real run (``rlpop.controller.Controller``, inline backend, run directory in
   a temp folder) of the paper's RL layout: 50 workers = 2 sub-populations of
   18 members + 14 evaluators, on the toy learner (``rlpop.toy.NoisyQuadratic``,
   so the curves are real noisy training curves and the run takes seconds).
   Q every 10 steps, ready every 100 (10 curve points per ready interval;
   evaluators check as often), ``max_eval_steps`` = 10 ready intervals (the
   paper's 6e8 / 6e7), 50 ready intervals in all. A *ready step* is a
   ``decide`` call at which the members are ready: within-sub-population PBT
   with the parent fitness from all evaluator curves (a GP fit per curve,
   ``best_score_diff`` per ordered pair), evaluator checks -- the expensive
   call. Per ready step: wall time and the calling thread's CPU time
   (``time.thread_time``: on a shared, loaded machine the wall time also
   counts time spent waiting for a core), live (the strategy behind a timing
   wrapper of the strategy protocol) and as the fastest of ``--replays``
   replays of the same call by a strategy restored from its state; the GP
   fits the call makes (heard with Python's profiling hook during a replay),
   each timed alone (short pieces escape preemption on a loaded box);
   median and p95 over the ready steps; GP fits and their curve lengths; the
   other ``decide`` calls too.

   The old-vs-new figures in the committed JSON
   (``decision_cost_under_load.baseline``: ``FirePBT`` as of revision
   ``15f2cad``: median fastest replay 323 ms per ready step against 121 ms)
   came from ``--baseline 15f2cad``,
   which loaded an old revision's ``fire.py`` and ``curves.py`` with ``git
   show`` and replayed the same ready steps with it. That replay is gone (it
   needed the git history and failed on a shallow clone); ``--baseline`` is
   still accepted by the parser and stops with this note. The script measures
   the current implementation only.

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
import dataclasses
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Report, load_average  # noqa: E402

from rlpop import curves  # noqa: E402
from rlpop.backends import make_backend  # noqa: E402
from rlpop.controller import Controller  # noqa: E402
from rlpop.experiment import FIRE, Agent, Experiment, RandomSearch  # noqa: E402
from rlpop.hparams import LogUniform  # noqa: E402
from rlpop.run import execute, load_experiment  # noqa: E402
from rlpop.store import RunDir  # noqa: E402
from rlpop.summary import best_final_q, first_step_below, median_hparam  # noqa: E402

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


def _summary(values: list[float], scale: float = 1e3) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, dtype=float) * scale
    return {"median": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2),
            "mean": round(float(np.mean(v)), 2), "max": round(float(np.max(v)), 2), "n": int(v.size)}


class TimedDecide:
    """A strategy behind the strategy protocol (:class:`rlpop.strategies.base.Strategy`) whose ``decide`` is timed,
    each ready step's input kept (the strategy's state, the view): what the controller calls, nothing replaced."""

    def __init__(self, inner: Any, every: int) -> None:
        self.inner, self.every, self.calls = inner, every, 0
        self.live: list[dict[str, Any]] = []
        self.snapshots: list[tuple[dict[str, Any], Any, list]] = []  # (state before, view, decisions)

    def layout(self):
        return self.inner.layout()

    def initial_hparams(self, worker):
        return self.inner.initial_hparams(worker)

    def get_state(self) -> dict[str, Any]:
        return self.inner.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.inner.set_state(state)

    def decide(self, view) -> list:
        self.calls += 1  # the controller decides once per round
        ready = self.calls % self.every == 0
        state = copy.deepcopy(self.inner.get_state()) if ready else None
        w0, c0 = time.perf_counter(), time.thread_time()
        out = self.inner.decide(view)
        self.live.append({"ready": ready, "wall": time.perf_counter() - w0, "cpu": time.thread_time() - c0,
                          "kinds": [d.kind for d in out]})
        if ready:
            self.snapshots.append((state, view, out))
        return out


@dataclasses.dataclass
class TimedFIRE(FIRE):
    """The FIRE spec, building its strategy behind :class:`TimedDecide`."""

    def build(self, space, seed: int) -> TimedDecide:
        return TimedDecide(super().build(space, seed), self.ready_steps // COST_EVAL_STEPS)


def _replay(exp: Experiment, state: dict[str, Any], view) -> tuple[float, float, list]:
    """One ``decide`` of a strategy built afresh and restored from ``state`` (as a resume does) on ``view``:
    (wall s, thread CPU s, decisions)."""
    strategy = FIRE(**dataclasses.asdict(exp.strategy)).build(exp.hparam_space(), exp.seed)
    strategy.set_state(copy.deepcopy(state))
    w0, c0 = time.perf_counter(), time.thread_time()
    out = strategy.decide(view)
    return time.perf_counter() - w0, time.thread_time() - c0, out


def _fitted_curves(exp: Experiment, state: dict[str, Any], view) -> list[tuple[np.ndarray, np.ndarray]]:
    """The curves a ready step's ``decide`` GP-smooths (``rlpop.curves.smooth``'s arguments), heard with Python's
    profiling hook during one replay (nothing is replaced)."""
    fitted: list[tuple[np.ndarray, np.ndarray]] = []
    code = curves.smooth.__code__

    def hear(frame, event, arg):
        if event == "call" and frame.f_code is code:
            fitted.append((np.array(frame.f_locals["x"], float), np.array(frame.f_locals["y"], float)))

    sys.setprofile(hear)
    try:
        _replay(exp, state, view)
    finally:
        sys.setprofile(None)
    return fitted


def _fastest_fits(fitted: list[tuple[np.ndarray, np.ndarray]], repeats: int) -> float:
    """The GP fits of a ready step, each timed on its own (fastest of ``repeats``: on a loaded machine a ~1 ms fit
    often escapes preemption where a ~50 ms call does not), summed, in seconds."""
    total = 0.0
    for x, y in fitted:
        fastest = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            curves.smooth(x, y)
            fastest = min(fastest, time.perf_counter() - t0)
        total += fastest
    return total


def decision_cost(ready_intervals: int, seed: int = 0, replays: int = 5) -> dict[str, Any]:
    """Time ``FIREStrategy.decide`` at every ready step of one toy run, live and replayed.

    Live: the call as the controller makes it (wall and thread CPU time).
    Replayed: after the run, each ready step's ``decide`` again, ``replays``
    times, by a strategy restored from its state before the call, on the
    same view -- the fastest replay is the step's cost with the least
    interference from other processes; a replay must return the same
    decisions (``decide`` is deterministic).
    """
    exp = cost_experiment(ready_intervals, seed)
    exp = dataclasses.replace(exp, strategy=TimedFIRE(**dataclasses.asdict(exp.strategy)))
    with tempfile.TemporaryDirectory() as tmp:
        backend = make_backend("inline", None)
        try:
            ctl = Controller(exp, RunDir.create(tmp, exp.name), backend)
            ctl.start()
            t0 = time.perf_counter()
            ctl.run()
            total = time.perf_counter() - t0
        finally:
            backend.close()
    timed: TimedDecide = ctl.strategy
    fitted = [_fitted_curves(exp, state, view) for state, view, _ in timed.snapshots]
    fits_s = [_fastest_fits(f, replays) for f in fitted]
    best: dict[str, list[float]] = {"wall": [], "cpu": []}
    for state, view, out in timed.snapshots:
        times = {k: math.inf for k in best}
        for _ in range(replays):
            wall, cpu, again = _replay(exp, state, view)
            if again != out:
                raise RuntimeError("a replayed decide returned other decisions: decide is not deterministic")
            times["wall"], times["cpu"] = min(times["wall"], wall), min(times["cpu"], cpu)
        for k, v in times.items():
            if math.isfinite(v):
                best[k].append(v)
    live = timed.live
    ready = [r for r in live if r["ready"]]
    other = [r for r in live if not r["ready"]]
    return {
        "workers": len(ctl.records),
        "decide_calls": len(live),
        "ready_steps": len(ready),
        "run_wall_s": round(total, 2),
        "ready_step_ms": {
            "live_wall": _summary([r["wall"] for r in ready]),
            "live_cpu": _summary([r["cpu"] for r in ready]),
            f"fastest_of_{replays}_replays_wall": _summary(best["wall"]),
            f"fastest_of_{replays}_replays_cpu": _summary(best["cpu"]),
            "of_which_gp_fits_fastest": _summary(fits_s),
        },
        "other_decide_ms": {"live_wall": _summary([r["wall"] for r in other]),
                            "live_cpu": _summary([r["cpu"] for r in other])},
        "gp_fits_per_ready_step": _summary([len(f) for f in fitted], scale=1.0),
        "fitted_curve_length": _summary([len(y) for f in fitted for _, y in f], scale=1.0),
        "decisions": {k: sum(r["kinds"].count(k) for r in live) for k in ("exploit", "assign", "success", "stop")},
        "load_average_after": load_average(),
    }


# -------------------------------------------------------------------------------------- RS vs PBT vs FIRE

#: the learning rate below which a population counts as having decayed it (the initial
#: LogUniform(0.05, 1) median is 0.22)
LR_THRESHOLD = 0.1


def toy_experiments() -> dict[str, Experiment]:
    """RS, PBT and FIRE on the toy at 16 workers: ``experiments/toy_pbt.py`` and ``toy_fire.py``;
    RS is toy_pbt's experiment with ``RandomSearch`` over the same population."""
    pbt = load_experiment(ROOT / "experiments" / "toy_pbt.py")
    fire = load_experiment(ROOT / "experiments" / "toy_fire.py")
    rs = dataclasses.replace(pbt, name="toy_rs", strategy=RandomSearch(population=pbt.strategy.population))
    exps = {"rs": rs, "pbt": pbt, "fire": fire}
    workers = {k: len(list(e.build_strategy().layout())) for k, e in exps.items()}
    budgets = {(e.total_steps, e.eval_steps, tuple(e.hparam_space().params)) for e in exps.values()}
    if len(set(workers.values())) != 1 or len(budgets) != 1:
        raise ValueError(f"toy experiments differ in worker count {workers} or budget/space {budgets}; "
                         "the comparison needs them equal")
    return exps


def run_toy(exp: Experiment, seed: int, root: str | Path) -> pd.DataFrame:
    """One run through ``rlpop.run.execute`` (the CLI's code path); its ``curves.csv``."""
    exp = exp.with_overrides({"seed": str(seed)})
    run = RunDir.create(root, f"{exp.name}-s{seed}")
    with contextlib.redirect_stdout(io.StringIO()):
        execute(exp, run, "inline", quiet=True)
    return pd.read_csv(run.path / "curves.csv")


def _quartiles(values: list[float]) -> dict[str, float]:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {"median": round(float(q50), 4), "q25": round(float(q25), 4), "q75": round(float(q75), 4),
            "iqr": round(float(q75 - q25), 4)}


def comparison(seeds: int) -> dict[str, Any]:
    """RS vs PBT vs FIRE on the toy over ``seeds`` seeds (see the module docstring)."""
    exps = toy_experiments()
    per_seed: list[dict[str, Any]] = []
    lr_tracks: dict[str, list[pd.Series]] = {"pbt": [], "fire_p1": [], "fire_p2": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            df = {k: run_toy(e, seed, tmp) for k, e in exps.items()}
            tracks = {"pbt": median_hparam(df["pbt"], "lr", 1), "fire_p1": median_hparam(df["fire"], "lr", 1),
                      "fire_p2": median_hparam(df["fire"], "lr", 2)}
            for k, v in tracks.items():
                lr_tracks[k].append(v)
            row = {"seed": seed,
                   "best_final_q": {"rs": best_final_q(df["rs"]), "pbt": best_final_q(df["pbt"]),
                                    "fire_best_member": best_final_q(df["fire"]),
                                    "fire_best_p1": best_final_q(df["fire"], 1)},
                   "first_step_median_lr_below": {k: first_step_below(v, LR_THRESHOLD) for k, v in tracks.items()}}
            per_seed.append(row)
            print(f"seed {seed}: best final Q {row['best_final_q']} | median lr < {LR_THRESHOLD} first at "
                  f"{row['first_step_median_lr_below']}", flush=True)
    keys = ("rs", "pbt", "fire_best_member", "fire_best_p1")
    qs = {k: [r["best_final_q"][k] for r in per_seed] for k in keys}
    total = exps["pbt"].total_steps
    checkpoints = list(range(500, total + 1, 500))
    schedule = {k: {str(step): round(float(np.median([float(t[t.index <= step].iloc[-1]) for t in v])), 4)
                    for step in checkpoints} for k, v in lr_tracks.items()}
    firsts = {k: [r["first_step_median_lr_below"][k] for r in per_seed] for k in lr_tracks}
    return {
        "setup": {k: {"strategy": type(e.strategy).__name__, **dataclasses.asdict(e.strategy),
                      "workers": len(list(e.build_strategy().layout())), "total_steps": e.total_steps,
                      "eval_steps": e.eval_steps, "space": {n: repr(v) for n, v in e.hparam_space().params.items()}}
                  for k, e in exps.items()},
        "seeds": seeds,
        "wall_s": round(time.perf_counter() - t0, 1),
        "best_final_q": {k: _quartiles(v) for k, v in qs.items()},
        "fire_p1_beats_pbt": int(sum(f > p for f, p in zip(qs["fire_best_p1"], qs["pbt"]))),
        "fire_p1_beats_rs": int(sum(f > r for f, r in zip(qs["fire_best_p1"], qs["rs"]))),
        "pbt_beats_rs": int(sum(p > r for p, r in zip(qs["pbt"], qs["rs"]))),
        "lr_schedule": {
            "threshold": LR_THRESHOLD,
            "first_step_median_lr_below": {
                k: {"per_seed": v, "never": sum(x is None for x in v),
                    "median_over_seeds": float(np.median([total + exps["pbt"].eval_steps if x is None else x
                                                          for x in v]))}
                for k, v in firsts.items()},
            "note": (f"median_over_seeds counts 'never' as {total} + one Q interval; per seed, the median lr "
                     "is over PBT's 16 members, FIRE's 6 P1 members and 6 P2 members"),
            "median_lr_at_step": schedule,
        },
        "per_seed": per_seed,
    }


# -------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer ready intervals and seeds (a smoke run)")
    p.add_argument("--out", default=str(RESULTS_DIR / "fire_toy.json"))
    p.add_argument("--seeds", type=int, default=10, help="seeds per method in the comparison (default 10)")
    p.add_argument("--only", choices=["cost", "compare"], help="run one part only")
    p.add_argument("--replays", type=int, default=5, help="replays of each ready step (default 5)")
    p.add_argument("--baseline", metavar="GIT_REV", help="removed (see the module docstring): stops with a note")
    args = p.parse_args(argv)
    if args.baseline:
        p.error("--baseline is no longer supported: the replay of an old FirePBT revision (git show) was removed; "
                "the committed old-vs-new numbers came from --baseline 15f2cad (see the module docstring)")
    report = Report(args.out, "fire_toy")
    out = report.doc
    if args.only in (None, "cost"):
        intervals = 10 if args.quick else 50
        out["decision_cost"] = {
            "setup": {"subpops": 2, "subpop_size": 18, "evaluators": 14, "eval_steps": COST_EVAL_STEPS,
                      "ready_steps": COST_READY_STEPS, "max_eval_steps": 10 * COST_READY_STEPS,
                      "ready_intervals": intervals, "learner": "toy (NoisyQuadratic)"},
            **decision_cost(intervals, replays=args.replays),
        }
        r = out["decision_cost"]
        print(f"ready step ms: {json.dumps(r['ready_step_ms'])}\nGP fits per ready step: "
              f"{r['gp_fits_per_ready_step']}", flush=True)
    if args.only in (None, "compare"):
        out["comparison"] = comparison(3 if args.quick else args.seeds)
        c = out["comparison"]
        print(f"best final Q (median [q25, q75]): {c['best_final_q']}; FIRE P1 beats PBT in "
              f"{c['fire_p1_beats_pbt']}/{c['seeds']} seeds", flush=True)
    report.finish()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
