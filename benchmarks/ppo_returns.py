"""PPO returns: does rlpop's PPO learn Hopper-v5 to CleanRL-level returns?

Trains rlpop PPO with its defaults (CleanRL's continuous-control defaults:
lr 3e-4, 2048 steps per update, 10 epochs, minibatch 64, GAE lambda 0.95,
clip 0.2, obs + reward normalisation) for ``--steps`` env steps per seed and
reports, per seed, the final mean return (mean undiscounted return of the last
20 finished episodes), a learning curve (every ``--curve-every`` steps), wall
time and steps/s; the bar is a mean final return >= 2000 on Hopper-v5 at 1M.

Each seed trains in its own process (``_common.train_returns``, as
``vmpo_returns.py`` does); the seeds run one after another by default,
``--parallel`` runs them at once (each with the given layout). The JSON is
rewritten after every curve point, so a killed run keeps what it measured;
``--max-minutes`` stops every seed cleanly at the first update past the budget
(and starts no seed after it) and says so. ``wall_seconds`` and ``steps_per_sec``
include the learner's construction (``startup_seconds``);
``train_steps_per_sec`` leaves it out.

    python benchmarks/ppo_returns.py [--env Hopper-v5] [--steps 1e6] [--seeds 0 1 2] [--out PATH]
                                     [--layout num_actors=2,envs_per_actor=4] [--parallel] [--max-minutes M]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, parse_layout, run_jobs, train_returns  # noqa: E402

LAST_EPISODES = 20
BAR = 2000.0


def summarise(seeds: dict[str, dict[str, Any]], target_steps: int) -> dict[str, Any]:
    """Mean, std and min over seeds of the final last-20 return, and the verdict on the bar
    (None unless every seed reached ``target_steps``)."""
    finals = [s["final_mean_return_last20"] for s in seeds.values() if s.get("final_mean_return_last20") is not None]
    summary: dict[str, Any] = {"seeds_finished": len(finals)}
    if finals:
        summary.update(mean_final_return=round(float(np.mean(finals)), 1),
                       std_final_return=round(float(np.std(finals)), 1),
                       min_final_return=round(float(np.min(finals)), 1),
                       all_seeds_reached_target_steps=all(
                           s.get("steps", 0) >= target_steps and not s.get("stopped_early") for s in seeds.values()))
        # the bar is defined at the target step count: no verdict from a run cut short
        summary["meets_bar_mean_ge_2000"] = (summary["mean_final_return"] >= BAR
                                             if summary["all_seeds_reached_target_steps"] else None)
        last_points = [s["curve"][-1]["mean_return_last20"] for s in seeds.values()
                       if s["curve"] and s["curve"][-1]["mean_return_last20"] is not None]
        if last_points:
            summary["mean_of_last_curve_points"] = round(float(np.mean(last_points)), 1)
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--steps", type=float, default=1e6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--layout", default="num_actors=0,envs_per_actor=8",
                    help="actor layout, e.g. num_actors=2,envs_per_actor=4 (0 actors = in-process)")
    ap.add_argument("--curve-every", type=float, default=5e4)
    ap.add_argument("--parallel", action="store_true", help="run the seeds as separate processes at once")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop every seed after this wall budget")
    ap.add_argument("--out", default=str(RESULTS_DIR / "ppo_returns.json"))
    args = ap.parse_args(argv)
    try:
        layout = parse_layout(args.layout)
    except ValueError as exc:
        raise SystemExit(str(exc))
    steps, curve_every = int(args.steps), int(args.curve_every)
    if steps < 1 or curve_every < 1:
        raise SystemExit("--steps and --curve-every must be >= 1")
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds: duplicates in {args.seeds}")
    from rlpop.agents.ppo import DEFAULTS

    hparams = {**DEFAULTS, **layout}
    report = Report(args.out, "ppo_returns",
                    settings={"env": args.env, "steps": steps, "seeds": args.seeds, "layout": layout,
                              "mode": "parallel processes" if args.parallel else "sequential",
                              "max_minutes": args.max_minutes, "curve_every": curve_every,
                              "final_metric": f"mean undiscounted return of the last {LAST_EPISODES} episodes",
                              "bar": f"mean over seeds >= {BAR:g}",
                              "hparams": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hparams.items()}},
                    status="running", seeds={str(s): {"curve": []} for s in args.seeds})
    report.save()
    seeds = report.doc["seeds"]
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None

    def on_event(event: dict[str, Any]) -> None:
        kind = event["kind"]
        body = {k: v for k, v in event.items() if k not in ("kind", "key", "job")}
        if kind == "point":
            seeds[event["key"]]["curve"].append(body)
            print(f"seed {event['key']}: {event['steps']} steps, {event['wall_seconds']}s, "
                  f"mean last-20 return {event['mean_return_last20']}", flush=True)
        else:
            if kind == "final":
                seeds[event["key"]].update(body)
            else:
                seeds[event["job"]]["error"] = event["error"]
            print(f"seed {event.get('key', event.get('job'))}: {event}", flush=True)
        report.save()

    jobs = [(str(s), train_returns, (str(s), "ppo", args.env, dict(layout), s, steps, curve_every, deadline))
            for s in args.seeds]
    status = "done"
    try:
        out = run_jobs(jobs, on_event, parallel=len(jobs) if args.parallel else 1, deadline=deadline)
        for name in out["not_started"]:
            seeds[name]["error"] = "not started: --max-minutes had passed"
        if out["failed"]:
            status = "some seeds failed"
        elif out["not_started"]:
            status = "done, some seeds not started (deadline)"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        report.finish(status=status, summary=summarise(seeds, steps))
    print(f"wrote {args.out}: {report.doc['summary']}")
    return report.doc


if __name__ == "__main__":
    main()
