"""V-MPO vs rlpop PPO: mean return vs actor steps on Hopper-v5 and Humanoid-v5 at an equal budget.

For each env, algorithm (``vmpo``, ``ppo``) and seed, one learner trains for the
same number of actor (env) steps and the script records its curve -- the mean
undiscounted return of the episodes that finished in each window of about 10k
steps -- plus the mean of the last 20 episodes at the end, wall time, steps/s
and the process's CPU time.

Settings
  * PPO: rlpop's defaults (CleanRL's continuous-control settings).
  * V-MPO on Hopper-v5: rlpop's VMPO defaults.
  * V-MPO on Humanoid-v5: ``experiments/humanoid_vmpo.py``'s hyperparameters,
    except ``num_actors=0`` (no actor processes on a loaded 2-core box): the
    16 envs (2 actors x 8 in the experiment) step in the learner's process, so
    each rollout keeps its 16 x 512-step shape.
  * Within an env both algorithms use the same layout (``num_actors=0``;
    8 envs on Hopper, 16 on Humanoid) and one torch thread.
  * The budget is a whole number of windows, and each window a multiple of
    both algorithms' rollout sizes, so both consume exactly the same steps and
    their curves share x values.

Budget: a short burst of every (env, algorithm) first measures steps/s under
the current load; when the requested budgets would not finish within
``--max-minutes`` every env's budget is scaled down by the same factor (the
JSON records the requested and the used budgets, and why). A run still going
at the deadline stops at its next rollout and is marked ``stopped_early``;
a configuration not started by then is not started.

Configurations run as separate processes, at most ``--parallel`` at once,
ordered seed by seed with V-MPO and PPO of one env side by side (they share
the load). The JSON is rewritten after every curve point and every finished
configuration; SIGTERM (``kill``) ends the run like Ctrl-C: running
configurations are stopped and the JSON is marked ``interrupted``.

    python benchmarks/vmpo_returns.py [--envs Hopper-v5 Humanoid-v5] [--steps-hopper N]
        [--steps-humanoid N] [--seeds 0 1 2] [--out PATH] [--parallel 2] [--max-minutes 35]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (RESULTS_DIR, Emit, Report, load_average, make_learner, run_jobs,  # noqa: E402
                     train_returns)

REPO = Path(__file__).resolve().parent.parent
HUMANOID_EXPERIMENT = REPO / "experiments" / "humanoid_vmpo.py"
ALGOS = ("vmpo", "ppo")
ENVS = ("Hopper-v5", "Humanoid-v5")
LAST_EPISODES = 20
TARGET_WINDOW = 10_000
#: envs per learner (num_actors=0) for both algorithms within an env
ENVS_PER_LEARNER = {"Hopper-v5": 8, "Humanoid-v5": 16}
#: share of the remaining wall budget the estimate may fill (start-up, the last lone run, load swings)
SAFETY = 0.85


# ------------------------------------------------------------------ settings
def algo_hparams(env_id: str, algo: str) -> dict[str, Any]:
    """The full hyperparameters one configuration trains with (defaults + overrides)."""
    if algo == "ppo":
        from rlpop.agents.ppo import DEFAULTS
        over: dict[str, Any] = {}
    elif algo == "vmpo":
        from rlpop.agents.vmpo import DEFAULTS
        over = {}
        if env_id == "Humanoid-v5":
            from rlpop.run import load_experiment
            over = dict(load_experiment(HUMANOID_EXPERIMENT).agent.hparams)
    else:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    n_envs = ENVS_PER_LEARNER.get(env_id, 8)
    return {**DEFAULTS, **over, "num_actors": 0, "envs_per_actor": n_envs, "torch_threads": 1}


def window_size(rollouts: Iterable[int], target: int = TARGET_WINDOW) -> int:
    """The curve window: the multiple of every rollout size (their lcm) nearest ``target``,
    at least one lcm, so every algorithm's window ends exactly on a rollout boundary."""
    unit = math.lcm(*(int(r) for r in rollouts))
    return unit * max(1, round(target / unit))


def round_budget(steps: float, window: int) -> int:
    """``steps`` rounded to the nearest whole number of windows (at least one)."""
    if not steps > 0:
        raise ValueError(f"budget must be > 0 steps, got {steps!r}")
    return window * max(1, round(steps / window))


def estimate_seconds(budgets: dict[str, int], rates: dict[str, dict[str, float]], n_seeds: int,
                     parallel: int, startup: dict[str, dict[str, float]] | None = None) -> float:
    """Wall time to train every (env, algo, seed) at the measured steps/s plus each
    configuration's start-up seconds; the rates were measured ``parallel`` at a time,
    so the sum of run times is shared by ``parallel`` processes."""
    startup = startup or {}
    total = sum((budgets[env] / rates[env][algo] + startup.get(env, {}).get(algo, 0.0)) * n_seeds
                for env in budgets for algo in rates[env])
    return total / max(1, parallel)


def startup_overhead(burst: dict[str, Any]) -> float:
    """A burst's start-up seconds less its first rollout's share at the timed rate
    (that rollout's steps are part of the budget already)."""
    return max(0.0, burst["startup_seconds"] - burst["startup_steps"] / burst["steps_per_sec"])


def shrink_budgets(budgets: dict[str, int], windows: dict[str, int], estimate: float,
                   available: float) -> tuple[dict[str, int], float]:
    """Scale every env's budget by ``available / estimate`` when the estimate is over,
    rounding down to whole windows (at least one); returns (budgets, factor)."""
    if estimate <= available:
        return dict(budgets), 1.0
    factor = max(available, 0.0) / estimate
    return {env: windows[env] * max(1, int(budgets[env] * factor // windows[env])) for env in budgets}, factor


# ------------------------------------------------------------------ child processes (run_jobs)
def burst(env_id: str, algo: str, hparams: dict[str, Any], min_steps: int, emit: Emit) -> None:
    """Time one short training burst: start-up (build + first rollout) and the steps/s after it."""
    t0, c0 = time.perf_counter(), time.process_time()
    learner = make_learner(algo, env_id, hparams, seed=1000)
    rollout = int(hparams["rollout_steps"])
    try:
        learner.train(rollout)
        t1, c1 = time.perf_counter(), time.process_time()
        done = 0
        while done < min_steps:
            done += learner.train(rollout).steps
        t2, c2 = time.perf_counter(), time.process_time()
    finally:
        learner.close()
    emit({"kind": "burst", "env": env_id, "algo": algo, "startup_seconds": round(t1 - t0, 2),
          "startup_steps": rollout, "steps": done, "seconds": round(t2 - t1, 2),
          "steps_per_sec": round(done / (t2 - t1), 1), "steps_per_cpu_sec": round(done / max(c2 - c1, 1e-9), 1),
          "load_average": load_average()})


def run_key(env_id: str, algo: str, seed: int) -> str:
    return f"{env_id}/{algo}/seed{seed}"


def summarise(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (env, algo): median/min/max over seeds of the final last-20 mean return,
    mean steps/s (wall and CPU) -- over the configurations that reached their target steps
    only; ``seeds_stopped_early`` counts those the deadline cut short (left out here)."""
    rows = []
    for env in dict.fromkeys(r["env"] for r in runs.values()):
        for algo in dict.fromkeys(r["algo"] for r in runs.values() if r["env"] == env):
            mine = [r for r in runs.values() if r["env"] == env and r["algo"] == algo]
            done = [r for r in mine if "final_mean_return_last20" in r and not r["stopped_early"]]
            finals = [r["final_mean_return_last20"] for r in done if r["final_mean_return_last20"] is not None]
            row: dict[str, Any] = {"env": env, "algo": algo, "seeds_finished": len(done),
                                   "seeds_stopped_early": sum(bool(r.get("stopped_early")) for r in mine),
                                   "steps": sorted({r["steps"] for r in done})}
            if finals:
                row.update(median_final_return=round(float(np.median(finals)), 1),
                           min_final_return=round(float(np.min(finals)), 1),
                           max_final_return=round(float(np.max(finals)), 1),
                           final_returns=[round(f, 1) for f in finals])
            if done:
                row.update(mean_steps_per_sec=round(float(np.mean([r["steps_per_sec"] for r in done])), 1),
                           mean_train_steps_per_sec=round(float(np.mean([r["train_steps_per_sec"] for r in done])), 1),
                           mean_steps_per_cpu_sec=round(float(np.mean([r["steps_per_cpu_sec"] for r in done])), 1),
                           mean_wall_seconds=round(float(np.mean([r["wall_seconds"] for r in done])), 1))
            rows.append(row)
    return rows


def mean_curves(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per env and algo: at each window end, the mean over seeds of the window's mean return
    (seeds whose window had no finished episode, and windows a deadline cut short, are left
    out; ``seeds`` says how many counted)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in runs.values():
        by_step = out.setdefault(r["env"], {}).setdefault(r["algo"], {})  # type: ignore[arg-type]
        for p in r["curve"]:
            if p["mean_return_window"] is not None and not p.get("partial_window"):
                by_step.setdefault(p["steps"], []).append(p["mean_return_window"])  # type: ignore[union-attr]
    return {env: {algo: [{"steps": s, "mean_return": round(float(np.mean(v)), 1), "seeds": len(v)}
                         for s, v in sorted(d.items())]  # type: ignore[union-attr]
                  for algo, d in algos.items()} for env, algos in out.items()}


def print_summary(rows: list[dict[str, Any]]) -> None:
    print(f"{'env':<12} {'algo':<5} {'seeds':>5} {'steps':>8} {'median':>8} {'min':>8} {'max':>8} {'steps/s':>8} "
          f"{'cpu st/s':>8}")
    for r in rows:
        def f(k):
            v = r.get(k)
            return "-" if v is None else f"{v:.1f}"
        steps = ",".join(str(s) for s in r["steps"]) or "-"
        print(f"{r['env']:<12} {r['algo']:<5} {r['seeds_finished']:>5} {steps:>8} {f('median_final_return'):>8} "
              f"{f('min_final_return'):>8} {f('max_final_return'):>8} {f('mean_steps_per_sec'):>8} "
              f"{f('mean_steps_per_cpu_sec'):>8}", flush=True)


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    ap.add_argument("--steps-hopper", type=float, default=150_000)
    ap.add_argument("--steps-humanoid", type=float, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parallel", type=int, default=2, help="configurations running at once (processes)")
    ap.add_argument("--max-minutes", type=float, default=35.0,
                    help="wall budget of the whole script (burst included); budgets shrink to fit it")
    ap.add_argument("--burst-steps", type=int, default=4096,
                    help="timed steps per (env, algo) burst after one start-up rollout; 0: no burst, no shrinking")
    ap.add_argument("--out", default=str(RESULTS_DIR / "vmpo_returns.json"))
    args = ap.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds: duplicates in {args.seeds}; give each seed once")
    if len(set(args.envs)) != len(args.envs):
        ap.error(f"--envs: duplicates in {args.envs}; give each env once")
    if args.parallel < 1:
        ap.error(f"--parallel must be >= 1, got {args.parallel}")
    if not args.max_minutes > 0:
        ap.error(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.burst_steps < 0:
        ap.error(f"--burst-steps must be >= 0, got {args.burst_steps}")
    for name in ("steps_hopper", "steps_humanoid"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.time()
    deadline = t_start + 60 * args.max_minutes
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # children inherit it: one thread per process on 2 cores

    hparams = {env: {algo: algo_hparams(env, algo) for algo in ALGOS} for env in args.envs}
    windows = {env: window_size(hp["rollout_steps"] for hp in hparams[env].values()) for env in args.envs}
    requested = {"Hopper-v5": args.steps_hopper, "Humanoid-v5": args.steps_humanoid}
    requested = {env: int(requested[env]) for env in args.envs}
    budgets = {env: round_budget(requested[env], windows[env]) for env in args.envs}

    settings = {
        "envs": args.envs, "algos": list(ALGOS), "seeds": args.seeds, "parallel": args.parallel,
        "requested_steps": requested, "window_steps": windows,
        "budget": {"max_minutes": args.max_minutes, "burst": {}, "burst_steps": args.burst_steps,
                   "rounded_to_windows": budgets},
        "curve": "per window: mean undiscounted return of the episodes that finished in it",
        "final_metric": f"mean undiscounted return of the last {LAST_EPISODES} episodes",
        "layout": {env: {"num_actors": 0, "envs_per_actor": ENVS_PER_LEARNER[env]} for env in args.envs},
        "hparams": {env: {a: {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}
                          for a, hp in d.items()} for env, d in hparams.items()},
        "notes": [
            "PPO: rlpop's defaults (CleanRL's continuous-control settings).",
            "V-MPO on Hopper-v5: rlpop's VMPO defaults; on Humanoid-v5: experiments/humanoid_vmpo.py's "
            "hyperparameters with num_actors=0 instead of 2 (no actor processes on a loaded 2-core box): "
            "its 16 envs (2 actors x 8) step in the learner's process, same 16 x 512-step rollouts.",
            "Within an env both algorithms use the same layout (num_actors=0, same envs) and torch threads 1; "
            "steps/s and CPU time are the learner process's (it also steps the envs).",
            "Configurations run as separate processes, --parallel at a time; V-MPO and PPO of the same env "
            "and seed run side by side so they share the load.",
            "Budgets are whole curve windows; each window is a multiple of both algorithms' rollout sizes, "
            "so both consume exactly the same steps.",
        ],
    }
    report = Report(args.out, "vmpo_returns", settings=settings, status="measuring burst", runs={}, summary=[])
    report.save()
    doc, runs = report.doc, report.doc["runs"]

    def on_event(event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "burst":
            doc["settings"]["budget"]["burst"].setdefault(event["env"], {})[event["algo"]] = {
                k: v for k, v in event.items() if k not in ("kind", "env", "algo")}
        elif kind == "error":
            doc.setdefault("errors", []).append(event)
        else:
            run = runs[event["key"]]
            body = {k: v for k, v in event.items() if k not in ("kind", "key")}
            if kind == "point":
                run["status"] = "running"
                run["curve"].append(body)
            else:
                run.update(body)
                run["status"] = "stopped at the deadline" if body["stopped_early"] else "done"
                doc["summary"], doc["mean_curves"] = summarise(runs), mean_curves(runs)
        report.save()
        if kind == "point":
            print(f"{event['key']}: {event['steps']} steps, {event['wall_seconds']}s, window mean return "
                  f"{_fmt(event['mean_return_window'])}, last-20 {_fmt(event['mean_return_last20'])}", flush=True)
        else:
            print(f"{kind}: {event}", flush=True)

    status = "done"
    try:
        if args.burst_steps:
            jobs = [(f"burst:{env}/{algo}", burst, (env, algo, hparams[env][algo], args.burst_steps))
                    for env in args.envs for algo in ALGOS]
            failed = run_jobs(jobs, on_event, args.parallel)["failed"]
            if failed:
                raise RuntimeError(f"burst failed for {failed}; see 'errors' in {args.out}")
            bursts = doc["settings"]["budget"]["burst"]
            rates = {env: {a: bursts[env][a]["steps_per_sec"] for a in ALGOS} for env in args.envs}
            startup = {env: {a: round(startup_overhead(bursts[env][a]), 1) for a in ALGOS} for env in args.envs}
            available = SAFETY * (deadline - time.time())
            estimate = estimate_seconds(budgets, rates, len(args.seeds), args.parallel, startup)
            used, factor = shrink_budgets(budgets, windows, estimate, available)
            doc["settings"]["budget"].update(
                estimate_seconds_at_requested=round(estimate, 1), seconds_available=round(available, 1),
                safety_share=SAFETY, shrink_factor=round(factor, 3), startup_seconds_per_run=startup,
                estimate_seconds_at_used=round(estimate_seconds(used, rates, len(args.seeds), args.parallel,
                                                                startup), 1))
            print(f"burst rates {rates}; estimate {estimate:.0f}s for {available:.0f}s available "
                  f"-> budgets {used}", flush=True)
        else:
            used = budgets
        doc["settings"]["steps_used"] = used
        configs = [(env, algo, seed) for seed in args.seeds for env in args.envs for algo in ALGOS]
        for env, algo, seed in configs:
            runs[run_key(env, algo, seed)] = {"env": env, "algo": algo, "seed": seed, "target_steps": used[env],
                                              "status": "pending", "curve": []}
        doc["status"] = "running"
        report.save()
        jobs = [(key, train_returns, (key, algo, env, hparams[env][algo], seed, used[env], windows[env], deadline))
                for env, algo, seed in configs for key in [run_key(env, algo, seed)]]
        out = run_jobs(jobs, on_event, args.parallel, deadline)
        for key in out["not_started"]:
            runs[key]["status"] = "not started: the deadline had passed"
        if out["failed"]:
            status = "some configurations failed"
        elif out["not_started"] or any(r.get("stopped_early") for r in runs.values()):
            status = "done, some configurations stopped at the deadline (fewer steps)"
    except KeyboardInterrupt:
        status = "interrupted"
    except RuntimeError as exc:
        status = f"failed: {exc}"
    finally:
        for run in runs.values():
            if run["status"] in ("pending", "running"):
                run["status"] = "not finished" if status != "done" else "failed"
        report.finish(summary=summarise(runs), mean_curves=mean_curves(runs), status=status,
                      wall_seconds_total=round(time.time() - t_start, 1))
    print(f"wrote {args.out} ({status}, {doc['wall_seconds_total']}s)")
    print_summary(doc["summary"])
    return doc


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


if __name__ == "__main__":
    main()
