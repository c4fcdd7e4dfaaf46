"""Throughput of a stable-baselines3 PPO member under rlpop vs the same SB3 PPO run alone.

For each env (default CartPole-v1 and Hopper-v5), with SB3's PPO defaults (MlpPolicy, n_steps 2048, batch 64,
10 epochs, 1 env, no VecNormalize), CPU, one torch thread, the same step budget ``--steps``:

* **rlpop**: ``Agent("sb3:PPO")`` in a ``Single()`` run through the real CLI
  (``python -m rlpop.run EXP --backend inline --quiet``) in its own process, Q measured every 2048 steps;
  the steady rate is taken from ``curves.csv``'s wall times: steps after the first update / time between the
  first and the last curve point (everything rlpop does between updates -- Q bookkeeping, curves, checkpoints --
  is inside that time).
* **sb3 alone**: ``PPO("MlpPolicy", env).learn(N)`` in its own process (``gym.make(env)``, SB3 wraps it in
  Monitor + DummyVecEnv as usual); the first 2048 steps are one ``learn`` call (warm-up, like rlpop's first
  point) and the steady rate is the remaining steps / the time of a second ``learn(N - 2048,
  reset_num_timesteps=False)`` -- the same computation as one ``learn(N)``.

Both also report the end-to-end wall time of their process (imports and start-up included) and its CPU
seconds. The two variants alternate (rlpop, sb3, rlpop, sb3 per env) ``--repeats`` times; the JSON has every
round and the medians.

    python benchmarks/sb3_member.py [--envs CartPole-v1 Hopper-v5] [--steps 8192] [--repeats 2] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, load_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRST = 2048  # one SB3 PPO rollout (n_steps default): the warm-up excluded from the steady rate

EXPERIMENT = """
from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(name="sb3_member", env={env!r}, agent=Agent("sb3:PPO", hparams={{"torch_threads": 1}}),
                        strategy=Single(), total_steps={steps}, eval_steps={first}, seed=0)
"""

PLAIN = """
import json, sys, time
import torch
torch.set_num_threads(1)
import gymnasium as gym
from stable_baselines3 import PPO

env_id, steps, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = PPO("MlpPolicy", gym.make(env_id), seed=0, device="cpu", verbose=0)
t0 = time.perf_counter()
model.learn(first)
t1 = time.perf_counter()
model.learn(steps - first, reset_num_timesteps=False)
t2 = time.perf_counter()
print(json.dumps({"first_s": t1 - t0, "steady_s": t2 - t1, "steps": int(model.num_timesteps)}))
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[subprocess.CompletedProcess, float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONUNBUFFERED": "1"}
    c0, t0 = _child_cpu(), time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res, wall, cpu


def run_rlpop(env_id: str, steps: int, work: Path, timeout: float) -> dict[str, Any]:
    import pandas as pd

    tag = f"{env_id.replace('-', '_')}_{time.time_ns()}"
    exp = work / f"exp_{tag}.py"
    exp.write_text(EXPERIMENT.format(env=env_id, steps=steps, first=FIRST))
    runs = work / f"runs_{tag}"
    cmd = [sys.executable, "-m", "rlpop.run", str(exp), "--backend", "inline", "--runs-dir", str(runs), "--quiet"]
    _, wall, cpu = _run(cmd, ROOT, timeout)
    (run,) = list(runs.iterdir())
    c = pd.read_csv(run / "curves.csv").sort_values("step")
    first, last = c.iloc[0], c.iloc[-1]
    steady = (last.step - first.step) / (last.wall_time - first.wall_time)
    return {"variant": "rlpop sb3:PPO (Single, inline, CLI)", "steps": int(last.step),
            "steady_steps_per_s": round(float(steady), 1), "process_wall_s": round(wall, 2),
            "process_cpu_s": round(cpu, 2), "end_to_end_steps_per_s": round(int(last.step) / wall, 1),
            "first_point_wall_s": round(float(first.wall_time), 2), "final_q": float(last.q),
            "load_average": load_average()}


def run_plain(env_id: str, steps: int, work: Path, timeout: float) -> dict[str, Any]:
    script = work / "plain_sb3.py"
    script.write_text(textwrap.dedent(PLAIN))
    res, wall, cpu = _run([sys.executable, str(script), env_id, str(steps), str(FIRST)], work, timeout)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"variant": "stable-baselines3 PPO alone", "steps": out["steps"],
            "steady_steps_per_s": round((out["steps"] - FIRST) / out["steady_s"], 1),
            "process_wall_s": round(wall, 2), "process_cpu_s": round(cpu, 2),
            "end_to_end_steps_per_s": round(out["steps"] / wall, 1), "first_learn_s": round(out["first_s"], 2),
            "load_average": load_average()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["CartPole-v1", "Hopper-v5"])
    p.add_argument("--steps", type=int, default=4 * FIRST, help="env steps per run (whole 2048-step rollouts)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--out", default=str(RESULTS_DIR / "sb3_member.json"))
    args = p.parse_args(argv)
    if args.steps % FIRST or args.steps < 2 * FIRST:
        p.error(f"--steps must be a multiple of {FIRST} and at least {2 * FIRST}")
    report = Report(args.out, "sb3_member",
                    settings={"envs": args.envs, "steps": args.steps, "repeats": args.repeats, "torch_threads": 1,
                              "sb3_ppo": "defaults: MlpPolicy, n_steps 2048, batch_size 64, n_epochs 10, 1 env, "
                                         "no VecNormalize, device cpu", "warmup_steps": FIRST},
                    rounds=[], summary={})
    result = report.doc
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sb3_member_") as tmp:
        work = Path(tmp)
        for env_id in args.envs:
            for r in range(args.repeats):
                order = (run_rlpop, run_plain) if r % 2 == 0 else (run_plain, run_rlpop)
                for fn in order:
                    row = {"env": env_id, "repeat": r, **fn(env_id, args.steps, work, args.timeout)}
                    print(json.dumps(row), flush=True)
                    result["rounds"].append(row)
                    report.save()
    for env_id in args.envs:
        rows = [x for x in result["rounds"] if x["env"] == env_id]
        summ = {}
        for key, variant in (("rlpop", "rlpop"), ("sb3", "stable")):
            mine = [x for x in rows if x["variant"].startswith(variant)]
            summ[key] = {m: round(statistics.median(x[m] for x in mine), 2)
                         for m in ("steady_steps_per_s", "end_to_end_steps_per_s", "process_wall_s", "process_cpu_s")}
        summ["steady_ratio_rlpop_over_sb3"] = round(summ["rlpop"]["steady_steps_per_s"]
                                                   / summ["sb3"]["steady_steps_per_s"], 3)
        summ["cpu_ratio_rlpop_over_sb3"] = round(summ["rlpop"]["process_cpu_s"] / summ["sb3"]["process_cpu_s"], 3)
        result["summary"][env_id] = summ
    report.finish(total_wall_s=round(time.perf_counter() - t_start, 1), load_average_at_end=load_average())
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
