"""PPO throughput: raw env steps/s vs rlpop PPO vs stable-baselines3 PPO, one run, one machine.

Measures, for each env (default Hopper-v5 and Humanoid-v5):

1. raw gymnasium steps/s -- one process, one env, uniformly random actions,
   reset on episode end (the physical limit of the box), and the same through a
   ``SyncVectorEnv`` of 8 (the container rlpop's gymnasium env bank steps);
2. rlpop PPO steps/s in its full learning loop (collect + update) at matched
   settings: 2048 env steps per update, 10 epochs, minibatch 64, 64x64 tanh,
   obs + reward normalisation, CPU -- a single run (a population of one, the
   batched learner with K = 1) for several env layouts
   (``num_actors x envs_per_actor``; 0 = envs in the learner's process);
3. stable-baselines3 PPO steps/s at the same settings (MlpPolicy = 64x64 tanh,
   ``VecNormalize`` for obs + reward normalisation, device cpu): 1 env with
   n_steps=2048, and 8 envs with n_steps=256 (2048 per update);
4. ratios rlpop / SB3 and rlpop / raw.

Each learner does one warm-up update (excluded: process start, first-call
overheads), then ``--updates`` timed updates. ``torch.set_num_threads(1)`` for
both libraries. The collect / update split comes from timers around rlpop's
``BatchedPPO.collect`` and ``BatchedPPO.learn`` and from SB3's rollout callbacks (SB3
computes GAE inside its collection phase, rlpop inside its update). With
``--repeats R`` the learners are measured R times in interleaved order and the
best round is used for the ratios (least disturbed by other load on the box).
Besides wall-clock steps/s, every learner reports CPU seconds (its process plus
its env processes) and steps per CPU-second: on a shared box the wall clock
moves with other people's load, the CPU cost much less. ``--profile`` adds a
cProfile summary of a few in-process rlpop updates.

    python benchmarks/ppo_throughput.py [--envs Hopper-v5 Humanoid-v5] [--updates N] [--out PATH]
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, load_average  # noqa: E402

ROLLOUT_STEPS = 2048
EPOCHS = 10
MINIBATCH = 64
DEFAULT_LAYOUTS = ("0x1", "0x8", "2x4")


# ---------------------------------------------------------------------------- raw env
def raw_env_steps_per_sec(env_id: str, steps: int, seed: int = 0, num_envs: int = 0) -> dict[str, Any]:
    """Steps/s of random-action stepping with reset on episode end.

    ``num_envs=0``: one plain env (``rlpop.envs.make_env``: same wrappers PPO
    uses). ``num_envs>0``: a same-step-autoreset ``SyncVectorEnv`` of that many
    envs, counting env steps (not vector steps). Actions are drawn up front so
    the timing is the env's own cost.
    """
    import gymnasium as gym

    from rlpop.envs import make_env

    rng = np.random.default_rng(seed)
    if num_envs == 0:
        env = make_env(env_id)
        space = env.action_space
        acts = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
        env.reset(seed=seed)
        for a in acts[: min(500, steps)]:  # warm-up
            _, _, te, tr, _ = env.step(a)
            if te or tr:
                env.reset()
        env.reset(seed=seed + 1)
        episodes = 0
        t0 = time.perf_counter()
        for a in acts:
            _, _, te, tr, _ = env.step(a)
            if te or tr:
                episodes += 1
                env.reset()
        dt = time.perf_counter() - t0
        env.close()
        return {"steps": steps, "seconds": dt, "steps_per_sec": steps / dt, "episodes": episodes}
    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    space = envs.single_action_space
    n_vec = max(1, steps // num_envs)
    acts = rng.uniform(space.low, space.high, size=(n_vec, num_envs, *space.shape)).astype(space.dtype)
    envs.reset(seed=seed)
    for a in acts[: min(100, n_vec)]:
        envs.step(a)
    t0 = time.perf_counter()
    for a in acts:
        envs.step(a)
    dt = time.perf_counter() - t0
    envs.close()
    return {"steps": n_vec * num_envs, "seconds": dt, "steps_per_sec": n_vec * num_envs / dt,
            "num_envs": num_envs}


# ---------------------------------------------------------------------------- rlpop
def parse_layouts(texts: list[str]) -> list[tuple[int, int]]:
    """``["0x1", "2x4"]`` -> ``[(0, 1), (2, 4)]`` (num_actors x envs_per_actor)."""
    out = []
    for t in texts:
        a, sep, e = t.lower().partition("x")
        try:
            na, ne = int(a), int(e)
        except ValueError:
            raise ValueError(f"--layouts: {t!r} is not 'NUM_ACTORSxENVS_PER_ACTOR' (e.g. 2x4)") from None
        if not sep or na < 0 or ne < 1 or ROLLOUT_STEPS % (max(1, na) * ne):
            raise ValueError(f"--layouts: {t!r} needs num_actors >= 0, envs_per_actor >= 1 and "
                             f"{ROLLOUT_STEPS} divisible by max(1, num_actors) * envs_per_actor")
        out.append((na, ne))
    return out


class CpuClock:
    """CPU seconds (user + system) of this process plus the given child pids.

    Wall-clock steps/s on a shared box moves with other people's load; CPU
    seconds per step is the work a learner itself does and moves much less.
    """

    def __init__(self, pids: list[int] | None = None):
        import psutil

        self._procs = [psutil.Process(pid) for pid in (pids or [])]
        self._start = self._read()

    def _read(self) -> float:
        total = time.process_time()
        for p in self._procs:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    def elapsed(self) -> float:
        return self._read() - self._start


def _timed(fn: Callable, bucket: dict[str, float], key: str) -> Callable:
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] += time.perf_counter() - t0
    return wrapper


def rlpop_ppo_hparams(num_actors: int, envs_per_actor: int) -> dict[str, Any]:
    """The matched settings (everything else is rlpop's CleanRL-like default)."""
    return {"rollout_steps": ROLLOUT_STEPS, "epochs": EPOCHS, "minibatch_size": MINIBATCH,
            "hidden": (64, 64), "num_actors": num_actors, "envs_per_actor": envs_per_actor,
            "norm_obs": True, "norm_reward": True, "device": "cpu", "torch_threads": 1}


def bench_rlpop(env_id: str, num_actors: int, envs_per_actor: int, updates: int, seed: int = 0) -> dict[str, Any]:
    """rlpop PPO steps/s over ``updates`` updates after one warm-up update."""
    from rlpop.agents.batched_ppo import BatchedPPO

    t_build = time.perf_counter()
    ppo = BatchedPPO(env_id, [rlpop_ppo_hparams(num_actors, envs_per_actor)], [seed])  # a population of one
    split = {"collect": 0.0, "update": 0.0}
    try:
        ppo.collect = _timed(ppo.collect, split, "collect")  # instrumentation only: time the two phases
        ppo.learn = _timed(ppo.learn, split, "update")
        ppo.train([0], ROLLOUT_STEPS)  # warm-up update (excluded)
        startup = time.perf_counter() - t_build
        split.update(collect=0.0, update=0.0)
        per_update = []
        steps = 0
        gc.collect()
        cpu = CpuClock([p.pid for p in getattr(ppo.bank, "_procs", [])])
        t0 = time.perf_counter()
        for _ in range(updates):
            u0 = time.perf_counter()
            steps += ppo.train([0], ROLLOUT_STEPS)[0].steps
            per_update.append(time.perf_counter() - u0)
        dt = time.perf_counter() - t0
        cpu_s = cpu.elapsed()
    finally:
        ppo.close()
    return {"library": "rlpop", "layout": f"{num_actors}x{envs_per_actor}", "num_actors": num_actors,
            "envs_per_actor": envs_per_actor, "steps": steps, "seconds": dt, "steps_per_sec": steps / dt,
            "cpu_seconds": cpu_s, "steps_per_cpu_sec": steps / cpu_s,
            "collect_seconds": split["collect"], "update_seconds": split["update"],
            "other_seconds": dt - split["collect"] - split["update"],
            "per_update_seconds": per_update, "startup_and_warmup_seconds": startup}


# ---------------------------------------------------------------------------- SB3
def bench_sb3(env_id: str, n_envs: int, updates: int, seed: int = 0) -> dict[str, Any]:
    """stable-baselines3 PPO steps/s (DummyVecEnv + VecNormalize, MlpPolicy 64x64 tanh, cpu)."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import rlpop.envs  # noqa: F401 - same registry as rlpop

    class PhaseTimer(BaseCallback):
        """Collect time = rollout start..end; train time = rollout end..next start / learn end."""

        def __init__(self):
            super().__init__()
            self.collect = self.train = 0.0
            self._start = self._end = None

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if self._end is not None:
                self.train += now - self._end
            self._start = now

        def _on_rollout_end(self) -> None:
            self._end = time.perf_counter()
            self.collect += self._end - self._start

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            if self._end is not None:
                self.train += time.perf_counter() - self._end
                self._end = None

    n_steps = ROLLOUT_STEPS // n_envs
    t_build = time.perf_counter()
    venv = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv),
                        norm_obs=True, norm_reward=True, gamma=0.99)
    model = SB3PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=MINIBATCH, n_epochs=EPOCHS,
                   learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0,
                   vf_coef=0.5, max_grad_norm=0.5, device="cpu", seed=seed, verbose=0)
    try:
        model.learn(ROLLOUT_STEPS)  # warm-up update (excluded)
        startup = time.perf_counter() - t_build
        timer = PhaseTimer()
        before = model.num_timesteps
        gc.collect()
        cpu = CpuClock()
        t0 = time.perf_counter()
        model.learn(updates * ROLLOUT_STEPS, reset_num_timesteps=False, callback=timer)
        dt = time.perf_counter() - t0
        cpu_s = cpu.elapsed()
        steps = model.num_timesteps - before
        net = str(model.policy.mlp_extractor)
    finally:
        venv.close()
    return {"library": "sb3", "layout": f"DummyVecEnv x{n_envs}, n_steps={n_steps}", "n_envs": n_envs,
            "n_steps": n_steps, "steps": steps, "seconds": dt, "steps_per_sec": steps / dt,
            "cpu_seconds": cpu_s, "steps_per_cpu_sec": steps / cpu_s,
            "collect_seconds": timer.collect, "update_seconds": timer.train,
            "other_seconds": dt - timer.collect - timer.train, "startup_and_warmup_seconds": startup,
            "mlp_extractor": " ".join(net.split())}


# ---------------------------------------------------------------------------- profile
PROFILE_KEYS = {
    "collect (BatchedLearner.collect)": ("batched_base.py", "collect"),
    "  env.step (SyncVectorEnv.step)": ("sync_vector_env.py", "step"),
    "  policy (StackedActorCritic.policy_params)": ("stacked.py", "policy_params"),
    "  normalize_obs": ("normalize.py", "normalize_obs"),
    "update (BatchedPPO._learn)": ("batched_ppo.py", "_learn"),
    "  loss.backward": ("_tensor.py", "backward"),
    "  adam_step": ("stacked.py", "adam_step"),
    "  clip_grad_norm_per_member": ("stacked.py", "clip_grad_norm_per_member"),
    "  log_prob_entropy": ("stacked.py", "log_prob_entropy"),
    "  value": ("stacked.py", "value"),
    "  gae": ("ppo_loss.py", "gae"),
    "  RewardScaler.scale": ("normalize.py", "scale"),
}


def profile_rlpop(env_id: str, updates: int, envs_per_actor: int = 1) -> dict[str, Any]:
    """cProfile of ``updates`` in-process updates: cumulative seconds of the
    main phases and the top functions by own time."""
    from rlpop.agents.batched_ppo import BatchedPPO

    ppo = BatchedPPO(env_id, [rlpop_ppo_hparams(0, envs_per_actor)], [0])  # a population of one
    try:
        ppo.train([0], ROLLOUT_STEPS)
        prof = cProfile.Profile()
        prof.enable()
        ppo.train([0], updates * ROLLOUT_STEPS)
        prof.disable()
    finally:
        ppo.close()
    stats = pstats.Stats(prof)
    total = max(v[3] for v in stats.stats.values())  # the outermost cumulative time
    phases = {}
    for label, (file_end, func) in PROFILE_KEYS.items():
        # max, not sum: same-named matches could nest
        cum = max((v[3] for (f, _, name), v in stats.stats.items() if f.endswith(file_end) and name == func),
                  default=0.0)
        phases[label] = {"seconds": round(cum, 3), "share": round(cum / total, 3)}
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]
    return {"layout": f"0x{envs_per_actor}", "updates": updates, "total_seconds": round(total, 3),
            "note": "cProfile inflates Python-call-heavy code; use the shares, not absolute times",
            "phases_cumulative": phases,
            "top_own_time": [{"function": f"{Path(f).name}:{line}({name})", "calls": v[1],
                              "own_seconds": round(v[2], 3), "cum_seconds": round(v[3], 3)}
                             for (f, line, name), v in top]}


# ---------------------------------------------------------------------------- main
def summarise(results: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    """Best round per config, then the ratios the issue asks for -- on wall-clock
    steps/s (the bar) and on steps per CPU-second (robust to other load)."""
    by_cfg: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_cfg.setdefault(f"{r['library']}:{r['layout']}", []).append(r)
    best = {k: max(v, key=lambda r: r["steps_per_sec"]) for k, v in by_cfg.items()}
    best_cpu = {k: max(r["steps_per_cpu_sec"] for r in v) for k, v in by_cfg.items()}
    table = {k: {"best_steps_per_sec": round(b["steps_per_sec"], 1),
                 "median_steps_per_sec": round(statistics.median(r["steps_per_sec"] for r in by_cfg[k]), 1),
                 "all_rounds_steps_per_sec": [round(r["steps_per_sec"], 1) for r in by_cfg[k]],
                 "best_steps_per_cpu_sec": round(best_cpu[k], 1),
                 "collect_share": round(b["collect_seconds"] / b["seconds"], 3),
                 "update_share": round(b["update_seconds"] / b["seconds"], 3)}
             for k, b in best.items()}
    out: dict[str, Any] = {"configs": table}
    rl = [k for k in best if k.startswith("rlpop:")]
    sb = {best[k]["n_envs"]: k for k in best if k.startswith("sb3:")}
    if not rl:
        return out
    for metric, values, name in (("wall", {k: best[k]["steps_per_sec"] for k in best}, "ratios"),
                                 ("cpu", best_cpu, "ratios_per_cpu_second")):
        top = max(rl, key=lambda k: values[k])
        b = values[top]
        ratios: dict[str, Any] = {"best_rlpop_layout": best[top]["layout"]}
        if metric == "wall":
            ratios["rlpop_best / raw_single_env"] = round(b / raw["single_env"]["steps_per_sec"], 3)
        for n, k in sorted(sb.items()):
            ratios[f"rlpop_best / sb3_{n}env"] = round(b / values[k], 3)
        for n, k in sorted(sb.items()):
            same = f"rlpop:0x{n}"
            if same in values:
                ratios[f"rlpop_0x{n} / sb3_{n}env (same env count)"] = round(values[same] / values[k], 3)
        out[name] = ratios
    b = best[max(rl, key=lambda k: best[k]["steps_per_sec"])]["steps_per_sec"]
    out["best_rlpop_layout"] = out["ratios"]["best_rlpop_layout"]
    out["best_rlpop_steps_per_sec"] = round(b, 1)
    for n, k in sorted(sb.items()):
        out[f"meets_bar_1.5x_sb3_{n}env"] = b / best[k]["steps_per_sec"] >= 1.5
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=["Hopper-v5", "Humanoid-v5"])
    ap.add_argument("--updates", type=int, default=6, help="timed updates per learner (after 1 warm-up)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; ratios use each config's best")
    ap.add_argument("--layouts", nargs="+", default=list(DEFAULT_LAYOUTS),
                    help="rlpop actor layouts NUM_ACTORSxENVS_PER_ACTOR (0 = in-process)")
    ap.add_argument("--sb3-envs", nargs="+", type=int, default=[1, 8], help="SB3 DummyVecEnv sizes")
    ap.add_argument("--raw-steps", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true", help="add a cProfile summary of in-process rlpop updates")
    ap.add_argument("--out", default=str(RESULTS_DIR / "ppo_throughput.json"))
    args = ap.parse_args(argv)
    if args.updates < 1 or args.repeats < 1:
        raise SystemExit("--updates and --repeats must be >= 1")
    for n in args.sb3_envs:
        if n < 1 or ROLLOUT_STEPS % n:
            raise SystemExit(f"--sb3-envs: {n} must divide {ROLLOUT_STEPS}")
    try:
        layouts = parse_layouts(args.layouts)
    except ValueError as exc:
        raise SystemExit(str(exc))

    torch.set_num_threads(1)
    report = Report(
        args.out, "ppo_throughput",
        settings={"rollout_steps_per_update": ROLLOUT_STEPS, "epochs": EPOCHS, "minibatch_size": MINIBATCH,
                  "net": "64x64 tanh, separate policy and value MLPs (both libraries)",
                  "normalisation": "obs + reward (rlpop: built in; SB3: VecNormalize)",
                  "device": "cpu", "torch_num_threads": 1, "warmup_updates_excluded": 1,
                  "timed_updates": args.updates, "repeats": args.repeats,
                  "differences": "rlpop clips the value loss (vf_clip=0.2), SB3 default does not; "
                                 "SB3 computes GAE in its collect phase, rlpop in its update phase"},
        envs={})
    for env_id in args.envs:
        print(f"[{env_id}] raw env ...", flush=True)
        raw = {"single_env": raw_env_steps_per_sec(env_id, args.raw_steps),
               "sync_vector_env_8": raw_env_steps_per_sec(env_id, args.raw_steps, num_envs=8)}
        print(f"  raw {raw['single_env']['steps_per_sec']:.0f} steps/s, "
              f"vector8 {raw['sync_vector_env_8']['steps_per_sec']:.0f} steps/s", flush=True)
        results: list[dict[str, Any]] = []
        entry = {"raw_env": raw, "runs": results}
        report.doc["envs"][env_id] = entry
        for rnd in range(args.repeats):
            for na, ne in layouts:
                r = bench_rlpop(env_id, na, ne, args.updates)
                r.update(round=rnd, load_average=load_average())
                results.append(r)
                print(f"  round {rnd} rlpop {na}x{ne}: {r['steps_per_sec']:.0f} steps/s "
                      f"(collect {r['collect_seconds']:.1f}s, update {r['update_seconds']:.1f}s)", flush=True)
                report.save()
            for n in args.sb3_envs:
                r = bench_sb3(env_id, n, args.updates)
                r.update(round=rnd, load_average=load_average())
                results.append(r)
                print(f"  round {rnd} sb3 x{n}: {r['steps_per_sec']:.0f} steps/s "
                      f"(collect {r['collect_seconds']:.1f}s, update {r['update_seconds']:.1f}s)", flush=True)
                report.save()
        entry["summary"] = summarise(results, raw)
        print(f"  summary: {entry['summary'].get('ratios')}", flush=True)
        if args.profile:
            entry["profile"] = profile_rlpop(env_id, min(args.updates, 3))
        report.save()
    report.finish()
    print(f"wrote {args.out}")
    return report.doc


if __name__ == "__main__":
    main()
