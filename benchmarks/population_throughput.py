"""Population throughput: aggregate env steps/s of PPO populations -- rlpop's batched engine, its per-member
engine, and Ray Tune's PBT on the same PPO -- against the machine's raw env rate.

    python benchmarks/population_throughput.py [--envs Hopper-v5 Humanoid-v5] [--populations 1 8 32]
        [--impls batched-inline batched-ray member-inline tune] [--rounds 4] [--skip ENV:POP:IMPL ...]

One script run, one machine, written to JSON (``benchmarks/results/population_throughput.json``):

1. raw env steps/s: one gymnasium env in one process, random actions (x cores = the machine's raw
   gymnasium rate, the denominator of the efficiency); and EnvPool with one thread per core;
2. PPO populations (PPO defaults: 2048 env steps per update, 10 epochs, minibatch 64, 64x64 tanh
   nets, obs + reward normalisation; 8 envs per member) through the real CLI path,
   ``python -m rlpop.run EXP --quiet`` in a subprocess: synchronous PBT on ``lr`` (Single() for a
   population of 1), ``eval_steps`` = one update, ready every 2 rounds, ``--rounds`` rounds;
   * ``batched-inline``: the batched engine, the population as one shard in one process;
   * ``batched-ray``: the batched engine on the Ray backend (embedded cluster);
   * ``member-inline``: ``engine=member``, one PPO learner per member, trained in turn (the engine
     before the batched one);
3. Ray Tune ``PopulationBasedTraining(synch=True)`` over the same per-member PPO
   (``benchmarks/_overhead_trainable.py``, one CPU per trial), same population, interval and budget.

Per run: ``steady_steps_per_s`` -- all members' env steps between the end of the first round and the
end of the last, over that time (curves.csv's wall times), i.e. without start-up; ``overall_steps_per_s``
-- all env steps over the whole process wall time; ``efficiency`` = steady / (cores x raw gymnasium
steps/s); ``startup_s`` -- from launch to the CLI's "run directory:" line (imports, Ray, shards, envs);
``peak_rss_mb`` of the whole process tree (sampled every 0.25 s) and per member. Tune: env steps / wall
of ``Tuner.fit`` (its start-up included: Tune has no per-round wall clock), and the same excluding the
first trials' start-up, as ``pbt_overhead.py`` measures it.
"""
from __future__ import annotations

import argparse
import json
import os
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
HP = {"rollout_steps": 2048, "epochs": 10, "minibatch_size": 64, "num_actors": 0, "envs_per_actor": 8}
BAR = 0.6
IMPLS = ("batched-inline", "batched-ray", "member-inline", "tune")

EXPERIMENT = '''from rlpop.experiment import PBT, Agent, Experiment, Single
from rlpop.hparams import LogUniform
P = {population}
experiment = Experiment(
    name="throughput", env={env!r}, agent=Agent("ppo", hparams={hp!r}),
    space={{"lr": LogUniform(1e-4, 1e-3, factors=(0.8, 1.25))}},
    strategy=PBT(population=P, ready_steps={ready}) if P > 1 else Single(),
    total_steps={total}, eval_steps={eval_steps}, seed=0)
'''


def cores() -> int:
    return len(os.sched_getaffinity(0))


def raw_gym_steps_per_s(env_id: str, seconds: float = 5.0) -> float:
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
    return n / (time.perf_counter() - t0)


def raw_envpool_steps_per_s(env_id: str, seconds: float = 5.0) -> float | None:
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


def run_rlpop(env_id: str, population: int, impl: str, rounds: int, workdir: Path, raw_total: float) -> dict[str, Any]:
    import pandas as pd

    backend = "ray" if impl == "batched-ray" else "inline"
    engine = "member" if impl == "member-inline" else "batched"
    exp = workdir / f"exp_{env_id}_{population}.py"
    exp.write_text(EXPERIMENT.format(population=population, env=env_id, hp=HP, ready=2 * EVAL_STEPS,
                                     total=rounds * EVAL_STEPS, eval_steps=EVAL_STEPS))
    runs = workdir / f"runs_{env_id}_{population}_{impl}"
    cmd = [sys.executable, "-m", "rlpop.run", str(exp), "--quiet", "--runs-dir", str(runs), "--backend", backend,
           "--set", f"engine={engine}"]
    load_before = load_average()
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
    rec: dict[str, Any] = {"env": env_id, "population": population, "impl": impl, "command": " ".join(cmd[1:]),
                           "returncode": rc, "wall_s": round(wall, 2), "startup_s": round(startup or float("nan"), 2),
                           "peak_rss_mb": round(peak, 1), "rss_mb_per_member": round(peak / population, 1),
                           "load_average_before": load_before, "load_average_after": load_average()}
    if rc != 0:
        rec["error"] = "\n".join(lines[-15:])
        return rec
    curves = pd.read_csv(next(runs.glob("*/curves.csv")))
    by_round = curves.groupby("round").agg(wall=("wall_time", "max"), steps=("step", "sum"))
    total_steps = int(curves.groupby("worker")["step"].max().sum())
    first, last = by_round.index.min(), by_round.index.max()
    steady_steps = total_steps - int(curves[curves["round"] == first]["step"].sum())
    steady_s = float(by_round.loc[last, "wall"] - by_round.loc[first, "wall"])
    steady = steady_steps / steady_s if steady_s > 0 else float("nan")
    rec.update({"env_steps": total_steps, "steady_steps_per_s": round(steady, 1),
                "overall_steps_per_s": round(total_steps / wall, 1),
                "efficiency": round(steady / raw_total, 4), "efficiency_overall": round(total_steps / wall / raw_total, 4)})
    return rec


def run_tune_side(env_id: str, population: int, rounds: int, workdir: Path, raw_total: float) -> dict[str, Any]:
    import ray

    import pbt_overhead

    cfg = pbt_overhead.BenchConfig(f"{env_id}_p{population}", env_id, population,
                                   {k: v for k, v in HP.items()}, EVAL_STEPS, 2 * EVAL_STEPS, rounds * EVAL_STEPS)
    load_before = load_average()
    t0 = time.perf_counter()
    ray.init(num_cpus=cores(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    mem = TreeMemory(os.getpid())
    try:
        rec = pbt_overhead.run_tune(cfg, cores(), workdir, "ready", True)
    finally:
        peak = mem.stop()
        ray.shutdown()
    steps_ex = rec["env_steps_per_s_excl_startup"]
    return {"env": env_id, "population": population, "impl": "tune", "wall_s": rec["wall_s"],
            "ray_init_s": round(ray_init_s, 2), "startup_s": round(rec["worker_startup_slot_s"] / max(1, rec["slots"]), 2),
            "env_steps": rec["env_steps"], "overall_steps_per_s": rec["env_steps_per_s"],
            "steady_steps_per_s": steps_ex, "efficiency": round(steps_ex / raw_total, 4),
            "efficiency_overall": round(rec["env_steps_per_s"] / raw_total, 4),
            "peak_rss_mb": round(peak, 1), "rss_mb_per_member": round(peak / population, 1),
            "errors": rec["errors"], "load_average_before": load_before, "load_average_after": load_average()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=["Hopper-v5", "Humanoid-v5"])
    ap.add_argument("--populations", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of one PPO update per member (even: ready every 2)")
    ap.add_argument("--skip", nargs="*", default=[], help="ENV:POP:IMPL combinations to leave out (time)")
    ap.add_argument("--out", default=str(RESULTS_DIR / "population_throughput.json"))
    args = ap.parse_args(argv)
    report = Report(args.out, "population_throughput", command=" ".join(sys.argv),
                    settings={"ppo": HP, "eval_steps": EVAL_STEPS, "rounds": args.rounds, "bar": BAR}, raw={}, runs=[])
    out = report.doc
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="rlpop-throughput-") as tmp:
        for env_id in args.envs:
            gym_rate = raw_gym_steps_per_s(env_id)
            pool_rate = raw_envpool_steps_per_s(env_id)
            raw_total = cores() * gym_rate
            out["raw"][env_id] = {"gymnasium_one_env_steps_per_s": round(gym_rate, 1), "cores": cores(),
                                  "gymnasium_cores_x_one_env": round(raw_total, 1),
                                  "envpool_steps_per_s": None if pool_rate is None else round(pool_rate, 1)}
            print(env_id, out["raw"][env_id], flush=True)
            for pop in args.populations:
                for impl in args.impls:
                    if f"{env_id}:{pop}:{impl}" in args.skip or (impl == "tune" and pop < 2):
                        continue
                    work = Path(tmp) / f"{env_id}_{pop}_{impl}"
                    work.mkdir()
                    if impl == "tune":
                        rec = run_tune_side(env_id, pop, args.rounds, work, raw_total)
                    else:
                        rec = run_rlpop(env_id, pop, impl, args.rounds, work, raw_total)
                    out["runs"].append(rec)
                    print(json.dumps({k: rec.get(k) for k in ("env", "population", "impl", "steady_steps_per_s",
                                                              "efficiency", "startup_s", "peak_rss_mb", "error")}),
                          flush=True)
                    out["elapsed_s"] = round(time.time() - t_start, 1)
                    report.save()
    # the bar and the ratios, read off the runs
    summary = {}
    for env_id in args.envs:
        for pop in args.populations:
            runs = {r["impl"]: r for r in out["runs"] if r["env"] == env_id and r["population"] == pop
                    and r.get("steady_steps_per_s")}
            if "batched-inline" in runs:
                best = max((runs[i] for i in ("batched-inline", "batched-ray") if i in runs),
                           key=lambda r: r["steady_steps_per_s"])
                entry = {"best_batched": best["impl"], "efficiency": best["efficiency"]}
                for other in ("member-inline", "tune"):
                    if other in runs:
                        entry[f"x_{other}"] = round(best["steady_steps_per_s"] / runs[other]["steady_steps_per_s"], 2)
                summary[f"{env_id}_p{pop}"] = entry
    path = report.finish(summary=summary, elapsed_s=round(time.time() - t_start, 1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
