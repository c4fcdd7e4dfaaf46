"""V-MPO's multiplier scheme and std head, measured at the budgets rlpop's learning tests use.

``duals``: "paper" (V-MPO Sec. 4.1: eta / alpha_mu / alpha_sigma learnt in the network's Adam at its lr,
projected to >= 1e-8) vs "softplus_adam" (rlpop's earlier scheme: softplus(raw) + 1e-8, raw in a separate
Adam at dual_lr 1e-2). ``std``: "state" (policy net outputs a softplus std, rlpyt's V-MPO port) vs "param"
(free state-independent log-std). Each combination learns the tasks of ``tests/test_vmpo.py`` with its FAST
settings (lr 1e-3, eps_eta 0.02, target period 10, 2 epochs of 1024-step rollouts in 128-sample
minibatches; everything else at the defaults) over the same seeds and budgets, in 10k-step chunks, stopping
at the first chunk whose last-20-episode mean reaches the threshold (as the tests do).

    python benchmarks/vmpo_duals.py                     # all four combinations, seeds 0 1 2
    python benchmarks/vmpo_duals.py --seeds 0 --duals paper --std state param
    python benchmarks/vmpo_duals.py --merge a.json b.json   # one results file from runs made in parallel

``std`` does not apply to CartPole's discrete actions (its two std rows are the same runs' numbers).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine_info, make_learner, write_json  # noqa: E402

#: tests/test_vmpo.py's FAST settings
FAST = {"lr": 1e-3, "eps_eta": 0.02, "target_period": 10, "epochs": 2, "rollout_steps": 1024, "minibatch_size": 128}
#: (env, threshold, budget) as tests/test_vmpo.py's learning tests
TASKS = [("CartPole-v1", 195.0, 60_000), ("InvertedPendulum-v5", 800.0, 120_000)]


def run_one(env_id: str, threshold: float, budget: int, seed: int, duals: str, std: str) -> dict:
    learner = make_learner("vmpo", env_id, {**FAST, "duals": duals, "std": std}, seed=seed)
    returns: list[float] = []
    curve: list[tuple[int, float]] = []
    steps, start, score, reached = 0, time.perf_counter(), float("-inf"), None
    try:
        while steps < budget:
            res = learner.train(10_000)
            steps += res.steps
            returns += res.episode_returns
            score = float(np.mean(returns[-20:])) if returns else float("nan")
            curve.append((steps, round(score, 1)))
            if len(returns) >= 20 and score >= threshold:
                reached = steps
                break
        mult = learner.multipliers()
    finally:
        learner.close()
    return {"env": env_id, "seed": seed, "duals": duals, "std": std, "threshold": threshold, "budget": budget,
            "steps_to_threshold": reached, "last20": round(score, 1), "seconds": round(time.perf_counter() - start, 1),
            "final_multipliers": {k: float(f"{v:.4g}") for k, v in mult.items()}, "curve": curve}


def summarise(runs: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["env"], r["duals"], r["std"]) for r in runs})
    for env, duals, std in keys:
        rs = [r for r in runs if (r["env"], r["duals"], r["std"]) == (env, duals, std)]
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        out.append({"env": env, "duals": duals, "std": std, "seeds": len(rs), "reached": len(reached),
                    "steps_to_threshold": [r["steps_to_threshold"] for r in rs],
                    "median_steps_reached": float(np.median(reached)) if reached else None,
                    "last20": [r["last20"] for r in rs], "seconds": round(sum(r["seconds"] for r in rs), 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--duals", nargs="+", default=["paper", "softplus_adam"])
    ap.add_argument("--std", nargs="+", default=["state", "param"])
    ap.add_argument("--envs", nargs="+", default=[t[0] for t in TASKS])
    ap.add_argument("--out", default=str(RESULTS_DIR / "vmpo_duals.json"))
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="combine these results files' runs into --out")
    args = ap.parse_args()
    info = machine_info()
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        runs = [r for p in parts for r in p["runs"]]
        write_json(args.out, {"machine": info, "parts": [p["machine"] for p in parts], "settings": FAST,
                              "tasks": TASKS, "summary": summarise(runs), "runs": runs})
        for row in summarise(runs):
            print(row)
        return
    runs = []
    for (env, thr, budget), duals, std, seed in itertools.product(
            [t for t in TASKS if t[0] in args.envs], args.duals, args.std, args.seeds):
        r = run_one(env, thr, budget, seed, duals, std)
        runs.append(r)
        print(f"{env:22s} duals={duals:13s} std={std:5s} seed={seed}: reached {thr:g} at "
              f"{r['steps_to_threshold']} (last-20 {r['last20']}), {r['seconds']} s, {r['final_multipliers']}",
              flush=True)
        write_json(args.out, {"machine": info, "settings": FAST, "tasks": TASKS, "summary": summarise(runs),
                              "runs": runs})
    for row in summarise(runs):
        print(row)


if __name__ == "__main__":
    main()
