"""Population throughput: aggregate env steps/s of PPO populations -- rlpop's batched engine and Ray Tune's
PBT over the same PPO -- against the machine's raw env rate, measured beside each configuration.

    python benchmarks/population_throughput.py [--envs Hopper-v5 Humanoid-v5] [--populations 8 32]
        [--configs rlpop rlpop-overlap rlpop-8envs rlpop-ray tune] [--repeats 3] [--rounds 4]
        [--skip ENV:POP:CONFIG ...]

One script run, one machine, written to JSON (``benchmarks/results/population_throughput.json``).

**Interleaved.** For every repeat, every env, every population and every configuration (in that order, so the
configurations of one repeat run minutes apart, not hours), the script measures, in this order:

1. ``others_busy_cores``: how many cores other processes kept busy over 2 s while this script sat idle
   (``psutil.cpu_percent``); a configuration that starts with more than 0.5 busy core per core is marked
   ``"loaded": true`` and left out of the summary (the 1-minute load average is recorded too, but it still
   carries the previous configuration's load for a minute, so it cannot tell a busy box from our own tail);
2. the raw env rates *before*: one gymnasium env in one process with random actions (median of 3 x 1.5 s),
   and EnvPool with one thread per core (median of 3 x 1 s);
3. the configuration, through the real CLI (``python -m rlpop.run EXP --quiet``, synchronous PBT on ``lr``,
   ``eval_steps`` = one update, ready every 2 rounds) or Ray Tune's ``PopulationBasedTraining(synch=True)``
   over the same PPO (``benchmarks/_overhead_trainable.py``: rlpop's PPO as a population of one per trial,
   one CPU per trial);
4. the raw env rates *after*, as in 2.

``efficiency`` = steady steps/s / (cores x the mean of the gymnasium rates before and after);
``of_envpool`` = steady / the mean EnvPool rate. ``steady_steps_per_s``: all members' env steps between the end
of the first round and the end of the last, over that time (curves.csv's wall times, i.e. without start-up);
Tune has no per-round clock: its steady rate excludes the trials' start-up as ``pbt_overhead.py`` measures it.
``peak_rss_mb`` of the whole process tree (sampled every 0.25 s) and per member.

The configurations (PPO with the project's defaults: 2048-step rollouts, 10 epochs, minibatch 64, 64x64 tanh
nets, one env per member, obs + reward normalisation), each a change of one thing:
``rlpop`` the defaults (one shard inline); ``rlpop-overlap`` ``overlap=True`` (EnvPool: one half of the members
is acted for while the other half's envs step); ``rlpop-8envs`` ``envs_per_actor=8`` (same 2048-step rollouts); ``rlpop-1env`` ``envs_per_actor=1``; ``rlpop-ray`` the Ray backend
(embedded cluster); ``tune`` Ray Tune's PBT.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, load_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVAL_STEPS = 2048
HP: dict[str, Any] = {}  # the project's PPO defaults
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {  # name -> (how it runs, PPO hparams over the defaults)
    "rlpop": ("inline", {}),
    "rlpop-overlap": ("inline", {"overlap": True}),
    "rlpop-8envs": ("inline", {"envs_per_actor": 8}),
    "rlpop-1env": ("inline", {"envs_per_actor": 1}),
    "rlpop-ray": ("ray", {}),
    "tune": ("tune", {}),
}
#: the issue's bars: (env, population) -> (what, threshold)
BARS = {("Hopper-v5", 8): ("efficiency", 0.6), ("Hopper-v5", 32): ("of_envpool", 0.9),
        ("Humanoid-v5", 8): ("efficiency", 0.6)}
TUNE_BAR = 3.0
LOADED = 0.5  # busy cores of other processes per core above which a measurement is not a result

EXPERIMENT = """from rlpop.experiment import PBT, Agent, Experiment, Single
from rlpop.hparams import LogUniform
P = {population}
experiment = Experiment(
    name="throughput", env={env!r}, agent=Agent("ppo", hparams={hp!r}),
    space={{"lr": LogUniform(1e-4, 1e-3, factors=(0.8, 1.25))}},
    strategy=PBT(population=P, ready_steps={ready}) if P > 1 else Single(),
    total_steps={total}, eval_steps={eval_steps}, seed=0)
"""


def cores() -> int:
    return len(os.sched_getaffinity(0))


def others_busy_cores(seconds: float = 2.0) -> float:
    """Cores kept busy by other processes while this one sleeps ``seconds``."""
    import psutil

    return round(psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or cores()), 2)


def raw_gym_steps_per_s(env_id: str, seconds: float = 1.5) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(4096)]
    env.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, te, tr, _ = env.step(actions[n % 4096])
        n += 1
        if te or tr:
            env.reset()
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def raw_envpool_steps_per_s(env_id: str, seconds: float = 1.0) -> float | None:
    from rlpop.agents.envbank import ENVPOOL_IDS, envpool_available

    if not envpool_available(env_id):
        return None
    import envpool
    import numpy as np

    n_envs = 8 * cores()
    pool = envpool.make(ENVPOOL_IDS[env_id], env_type="gymnasium", num_envs=n_envs, num_threads=cores(),
                        batch_size=n_envs, seed=0)
    pool.reset()
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (16, n_envs, *pool.action_space.shape)).astype(np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pool.step(acts[(n // n_envs) % 16])
        n += n_envs
    rate = n / (time.perf_counter() - t0)
    pool.close()
    return rate


def raw_rates(env_id: str, repeats: int = 3) -> dict[str, Any]:
    """Median of ``repeats`` measurements of each raw rate, with the samples and the load."""
    gym_rates = [raw_gym_steps_per_s(env_id) for _ in range(repeats)]
    pool_rates = [raw_envpool_steps_per_s(env_id) for _ in range(repeats)]
    pool_rates = [r for r in pool_rates if r is not None]
    return {"gym": round(statistics.median(gym_rates), 1), "gym_samples": [round(r) for r in gym_rates],
            "envpool": round(statistics.median(pool_rates), 1) if pool_rates else None,
            "envpool_samples": [round(r) for r in pool_rates], "load_average": load_average()}


class TreeMemory:
    """Peak RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.25):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak / 2**20


def run_rlpop(env_id: str, population: int, config: str, rounds: int, workdir: Path) -> dict[str, Any]:
    import pandas as pd

    backend, hp = CONFIGS[config]
    exp = workdir / f"exp_{env_id}_{population}_{config}.py"
    exp.write_text(EXPERIMENT.format(population=population, env=env_id, hp={**HP, **hp}, ready=2 * EVAL_STEPS,
                                     total=rounds * EVAL_STEPS, eval_steps=EVAL_STEPS))
    runs = workdir / "runs"
    cmd = [sys.executable, "-m", "rlpop.run", str(exp), "--quiet", "--runs-dir", str(runs), "--backend", backend]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    mem = TreeMemory(proc.pid)
    startup, lines = None, []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if startup is None and line.startswith("run directory:"):
            startup = time.perf_counter() - t0
    rc = proc.wait()
    wall = time.perf_counter() - t0
    peak = mem.stop()
    rec: dict[str, Any] = {"command": " ".join(cmd[1:]), "returncode": rc, "wall_s": round(wall, 2),
                           "startup_s": round(startup or float("nan"), 2), "peak_rss_mb": round(peak, 1),
                           "rss_mb_per_member": round(peak / population, 1)}
    if rc != 0:
        rec["error"] = "\n".join(lines[-15:])
        return rec
    curves = pd.read_csv(next(runs.glob("*/curves.csv")))
    by_round = curves.groupby("round").agg(wall=("wall_time", "max"), steps=("step", "sum"))
    total_steps = int(curves.groupby("worker")["step"].max().sum())
    first, last = by_round.index.min(), by_round.index.max()
    steady_steps = total_steps - int(curves[curves["round"] == first]["step"].sum())
    steady_s = float(by_round.loc[last, "wall"] - by_round.loc[first, "wall"])
    rec.update({"env_steps": total_steps, "steady_steps_per_s": round(steady_steps / steady_s, 1) if steady_s > 0 else None,
                "overall_steps_per_s": round(total_steps / wall, 1)})
    return rec


def run_tune_side(env_id: str, population: int, rounds: int, workdir: Path) -> dict[str, Any]:
    import ray

    import pbt_overhead

    cfg = pbt_overhead.BenchConfig(f"{env_id}_p{population}", env_id, population,
                                   {"rollout_steps": 2048, **HP}, EVAL_STEPS, 2 * EVAL_STEPS, rounds * EVAL_STEPS)
    t0 = time.perf_counter()
    ray.init(num_cpus=cores(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    mem = TreeMemory(os.getpid())
    try:
        rec = pbt_overhead.run_tune(cfg, cores(), workdir, "ready", True)
    finally:
        peak = mem.stop()
        ray.shutdown()
    return {"wall_s": rec["wall_s"], "ray_init_s": round(ray_init_s, 2),
            "startup_s": round(rec["worker_startup_slot_s"] / max(1, rec["slots"]), 2),
            "env_steps": rec["env_steps"], "overall_steps_per_s": rec["env_steps_per_s"],
            "steady_steps_per_s": rec["env_steps_per_s_excl_startup"], "peak_rss_mb": round(peak, 1),
            "rss_mb_per_member": round(peak / population, 1), "errors": rec["errors"]}


def measure(env_id: str, population: int, config: str, rounds: int, workdir: Path) -> dict[str, Any]:
    """One interleaved measurement: others' load, raw rates before, the configuration, raw rates after."""
    busy = others_busy_cores()
    before = raw_rates(env_id)
    load_start = load_average()
    if CONFIGS[config][0] == "tune":
        rec = run_tune_side(env_id, population, rounds, workdir)
    else:
        rec = run_rlpop(env_id, population, config, rounds, workdir)
    after = raw_rates(env_id)
    gym = (before["gym"] + after["gym"]) / 2
    pool = None if before["envpool"] is None else (before["envpool"] + after["envpool"]) / 2
    steady = rec.get("steady_steps_per_s")
    rec = {"env": env_id, "population": population, "config": config, "others_busy_cores": busy,
           "loaded": busy > LOADED * cores(), "load_average_at_start": load_start, "raw_before": before,
           "raw_after": after, **rec}
    if steady:
        rec["efficiency"] = round(steady / (cores() * gym), 4)
        rec["of_envpool"] = round(steady / pool, 4) if pool else None
    return rec


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per env/population/configuration: medians over the runs that were not loaded; the bars; x Tune."""
    out: dict[str, Any] = {}
    keys = sorted({(r["env"], r["population"]) for r in runs})
    for env_id, pop in keys:
        entry: dict[str, Any] = {}
        for config in CONFIGS:
            rs = [r for r in runs if (r["env"], r["population"], r["config"]) == (env_id, pop, config)]
            good = [r for r in rs if not r["loaded"] and r.get("steady_steps_per_s")]
            if not rs:
                continue
            row: dict[str, Any] = {"runs": len(rs), "unloaded": len(good)}
            if good:
                for k in ("steady_steps_per_s", "efficiency", "of_envpool", "peak_rss_mb", "rss_mb_per_member",
                          "startup_s"):
                    vals = [r[k] for r in good if r.get(k) is not None]
                    if vals:
                        row[k] = round(statistics.median(vals), 4 if k in ("efficiency", "of_envpool") else 1)
                        if k == "steady_steps_per_s":
                            row["steady_range"] = [min(vals), max(vals)]
            entry[config] = row
        base = entry.get("rlpop", {})
        if base.get("steady_steps_per_s") and entry.get("tune", {}).get("steady_steps_per_s"):
            entry["rlpop_x_tune"] = round(base["steady_steps_per_s"] / entry["tune"]["steady_steps_per_s"], 2)
            entry["tune_bar"] = {"need": TUNE_BAR, "met": entry["rlpop_x_tune"] >= TUNE_BAR}
        bar = BARS.get((env_id, pop))
        if bar and base.get(bar[0]) is not None:
            entry["bar"] = {"what": bar[0], "need": bar[1], "got": base[bar[0]], "met": base[bar[0]] >= bar[1]}
        out[f"{env_id}_p{pop}"] = entry
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=["Hopper-v5"])
    ap.add_argument("--populations", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--configs", nargs="+", default=["rlpop", "rlpop-overlap", "tune"], choices=list(CONFIGS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of one PPO update per member (even: ready every 2)")
    ap.add_argument("--skip", nargs="*", default=[], help="ENV:POP:CONFIG combinations to leave out (time)")
    ap.add_argument("--out", default=str(RESULTS_DIR / "population_throughput.json"))
    args = ap.parse_args(argv)
    report = Report(args.out, "population_throughput", command=" ".join(sys.argv),
                    settings={"ppo": HP or "the project's defaults", "configs": {c: CONFIGS[c] for c in args.configs},
                              "eval_steps": EVAL_STEPS, "rounds": args.rounds, "repeats": args.repeats,
                              "cores": cores(), "loaded_above_busy_cores_per_core": LOADED}, runs=[])
    out = report.doc
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="rlpop-throughput-") as tmp:
        for rep in range(args.repeats):
            for env_id in args.envs:
                for pop in args.populations:
                    for config in args.configs:
                        if f"{env_id}:{pop}:{config}" in args.skip or (config == "tune" and pop < 2):
                            continue
                        work = Path(tmp) / f"{rep}_{env_id}_{pop}_{config}"
                        work.mkdir()
                        rec = {"repeat": rep, **measure(env_id, pop, config, args.rounds, work)}
                        out["runs"].append(rec)
                        print(json.dumps({k: rec.get(k) for k in ("repeat", "env", "population", "config",
                                                                  "steady_steps_per_s", "efficiency", "of_envpool",
                                                                  "others_busy_cores", "loaded", "error")}),
                              flush=True)
                        out["summary"] = summarise(out["runs"])
                        out["elapsed_s"] = round(time.time() - t_start, 1)
                        report.save()
    path = report.finish(summary=summarise(out["runs"]), elapsed_s=round(time.time() - t_start, 1))
    print(json.dumps(out["summary"], indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
