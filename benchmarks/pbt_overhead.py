"""PBT overhead: the share of a PBT run's wall time spent outside training, rlpop vs Ray Tune's PBT.

    python benchmarks/pbt_overhead.py [--quick] [--out PATH] [--configs corridor_p8 hopper_p8 ...]

What runs (one script run, one machine, numbers written to JSON):

1. raw gymnasium Hopper-v5 steps/s: one process, one env, random actions,
   reset on episode end;
2. rlpop synchronous PBT (``rlpop.run.execute``: the real controller, run
   directory, CSV, decision log, checkpoints, TensorBoard) with PPO on
   Corridor-v0 (rlpop's custom env) and Hopper-v5, population 8 and 32,
   ``num_actors=0`` (collection in the learner's process), backend ``inline``;
   and the 8-member Hopper-v5 config once more on backend ``ray``;
3. Ray Tune's ``PopulationBasedTraining(synch=True)`` on the same PPO learner
   (``benchmarks/_overhead_trainable.py``), same population, same Q interval,
   perturbation interval, total steps, lr distribution, explore factors
   (x0.8 / x1.25, no resampling) and truncation quantile (25%). The trainable
   checkpoints once per perturbation interval (rlpop's cadence;
   ``--tune-checkpoint report`` for every report), ``reuse_actors=True``
   (Tune's advice for PBT; ``--no-reuse-actors``) and Tune stops trials at
   ``total_steps``. ``--quick`` runs Tune on the Corridor config only.

Definition of the overhead share (the same for every run)::

    outside_share = 1 - (sum over workers of time inside learner training) / (wall x slots)

* "time inside learner training": rlpop -- ``TrainReport.train_s`` of every
  ``Worker.train`` call (= ``PPO.train``); Tune -- the ``PPO.train`` call
  timed inside the trainable. Worker/actor start-up, checkpoint
  save/restore, copies, decisions, logging, scheduling and waiting are all
  *outside* training.
* "wall": rlpop -- the last ``RoundFinished`` event's ``wall_s``
  (from building the controller, before the workers are built, to the end of
  the last round, final checkpoint included); Tune -- ``Tuner.fit()``.
  ``ray.init`` is excluded from both and reported on its own.
* "slots": how many trainings the backend runs at the same time. rlpop
  inline: 1 (one process, members in turn; then the share is exactly
  ``1 - train_s / wall``). rlpop ray: the population (every member trains at
  once, time-sharing the cores). Tune: ``min(population, cores)`` (one CPU per
  trial, as Tune schedules them).
  Also reported without the one-off start-up (``outside_share_excl_startup``):
  rlpop -- minus ``Controller.start`` (building every worker) x slots; Tune --
  minus, for the first ``slots`` actor processes, the process's age when the
  trainable first ran in it plus that start's imports and PPO construction
  (further process boots and restarts after PBT pauses stay in).
  For rlpop the script also reports the controller's own view,
  ``1 - Controller.train_s / wall`` (``train_s`` = wall time inside
  ``backend.train``), which on ``ray`` hides stragglers' waiting inside
  training.

The outside-training time of rlpop is broken down from the controller's own
events (``rlpop.events``: start-up, per-round record/decide/apply timings,
checkpoints) and Python's gc pauses; the rest (the TensorBoard listener among
it) is reported as untimed controller bookkeeping.
Tune's is broken down from the trainable's own timers (setup, restore, save,
report); the rest of Tune's slot time is actor start-up, scheduling and
trials waiting paused for the synchronous perturbation.

Finally: aggregate env steps/s of the 8-member Hopper-v5 PBT run (all
members' env steps / wall) divided by (cores x raw Hopper-v5 steps/s), for
each implementation (rlpop inline uses one core; rlpop ray and Tune all).
The bar for rlpop is an outside share <= 2%.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402

BAR = 0.02
LR_RANGE = (1e-4, 1e-3)
LR_FACTORS = (0.8, 1.25)
QUANTILE = 0.25
SEED = 0
CORRIDOR_HP = {"rollout_steps": 1024, "num_actors": 0, "envs_per_actor": 4}
HOPPER_HP = {"rollout_steps": 1024, "num_actors": 0, "envs_per_actor": 2}


@dataclass(frozen=True)
class BenchConfig:
    """One PBT configuration, run the same way by rlpop and by Tune."""

    name: str
    env: str
    population: int
    hparams: dict[str, Any]
    eval_steps: int      # env steps per Q point (= per tune.report)
    ready_steps: int     # PBT ready / perturbation interval
    total_steps: int     # per member

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"{self.name}: population={self.population} must be >= 2 for PBT")
        if self.total_steps % self.ready_steps or self.ready_steps % self.eval_steps:
            raise ValueError(f"{self.name}: need total_steps % ready_steps == 0 and ready_steps % eval_steps == 0 "
                             f"(got {self.total_steps}, {self.ready_steps}, {self.eval_steps})")
        if self.eval_steps % self.hparams["rollout_steps"]:
            raise ValueError(f"{self.name}: eval_steps={self.eval_steps} must be a multiple of rollout_steps="
                             f"{self.hparams['rollout_steps']} so every Q point is whole PPO updates")


def configs(quick: bool) -> list[BenchConfig]:
    """Full: ~15-20 min on 2 loaded cores; quick: a smoke run of the whole pipeline (< 3 min)."""
    small_c = {**CORRIDOR_HP, "rollout_steps": 256}
    small_h = {**HOPPER_HP, "rollout_steps": 256}
    if quick:
        return [BenchConfig("corridor_p4", "Corridor-v0", 4, small_c, 256, 512, 1024),
                BenchConfig("hopper_p4", "Hopper-v5", 4, small_h, 256, 512, 1024)]
    return [BenchConfig("corridor_p8", "Corridor-v0", 8, CORRIDOR_HP, 1024, 2048, 6144),
            BenchConfig("corridor_p32", "Corridor-v0", 32, {**CORRIDOR_HP, "rollout_steps": 512}, 512, 1024, 2048),
            BenchConfig("hopper_p8", "Hopper-v5", 8, HOPPER_HP, 1024, 2048, 4096),
            BenchConfig("hopper_p32", "Hopper-v5", 32, small_h, 256, 512, 1024)]


def efficiency_config(quick: bool) -> str:
    """The Hopper-v5 PBT config whose aggregate steps/s is compared with cores x raw steps/s
    (and which also runs on rlpop's ray backend)."""
    return "hopper_p4" if quick else "hopper_p8"


# ---------------------------------------------------------------------------- the measure
def outside_training_share(train_s: float, wall_s: float, slots: int) -> float:
    """Share of the run's slot time (``wall_s x slots``) not spent inside learner training.

    ``1 - train_s / (wall_s * slots)``; ``train_s`` is the sum over workers of
    time inside training. The PBT loop (Jaderberg et al. 2017; FIRE PBT,
    Dalibard & Jaderberg 2020, section 2) alternates training with
    exploit/explore; this is the cost of everything that is not training.
    """
    if not (isinstance(wall_s, (int, float)) and wall_s > 0):
        raise ValueError(f"wall_s={wall_s!r} must be > 0 seconds")
    if not (isinstance(slots, int) and slots >= 1):
        raise ValueError(f"slots={slots!r} must be an integer >= 1 (trainings running at once)")
    if not (isinstance(train_s, (int, float)) and train_s >= 0):
        raise ValueError(f"train_s={train_s!r} must be >= 0 seconds")
    return 1.0 - train_s / (wall_s * slots)


# ---------------------------------------------------------------------------- timers
class Timers:
    """Inclusive wall time and call counts per name."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.longest: dict[str, float] = {}

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        self.total[name] = self.total.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + calls
        self.longest[name] = max(self.longest.get(name, 0.0), seconds)


class RunListener:
    """Hears an rlpop run's events (``rlpop.events``): the workers' start-up, the controller's own phase timings per
    round, the checkpoints, the workers' train times and the last round's record (wall, train time, counts)."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.start_s = 0.0
        self.worker_train_s = 0.0  # the sum of per-worker train times
        self.last = None  # the last RoundFinished

    def __call__(self, event: Any) -> None:
        from rlpop.events import CheckpointSaved, RoundFinished, RunStarted

        if isinstance(event, RunStarted):
            self.start_s = event.start_s
            self.timers.add("start: build workers", event.start_s)
        elif isinstance(event, CheckpointSaved):
            self.timers.add("checkpoint", event.seconds)
        elif isinstance(event, RoundFinished):
            self.last = event
            for phase, name in (("record", "curves/metrics CSV"), ("decide", "strategy.decide (view included)"),
                                ("apply", "apply decisions (copies, hparams, decision log)")):
                self.timers.add(name, event.timings.get(phase, 0.0))
            # the members of a batched shard train together and each reports the shard's time: count it once
            self.worker_train_s += sum({r.train_s for r in event.reports.values()})


@contextlib.contextmanager
def gc_pauses(timers: Timers) -> Iterator[None]:
    """Python's gc pauses during the run (``gc.callbacks``), wherever they fall: they overlap the other rows."""
    gc_start: list[float] = []

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[:] = [time.perf_counter()]
        elif gc_start:
            timers.add(f"python gc pauses, gen {info.get('generation')} (anywhere: overlaps the rows above)",
                       time.perf_counter() - gc_start.pop())

    gc.callbacks.append(gc_timer)
    try:
        yield
    finally:
        gc.callbacks.remove(gc_timer)


# ---------------------------------------------------------------------------- rlpop
def build_experiment(cfg: BenchConfig, backend: str):
    from rlpop.experiment import PBT, Agent, Experiment
    from rlpop.hparams import LogUniform

    return Experiment(name=cfg.name, env=cfg.env, agent=Agent("ppo", hparams=dict(cfg.hparams)),
                      space={"lr": LogUniform(*LR_RANGE, factors=LR_FACTORS)},
                      strategy=PBT(population=cfg.population, ready_steps=cfg.ready_steps, quantile=QUANTILE),
                      total_steps=cfg.total_steps, eval_steps=cfg.eval_steps, seed=SEED, backend=backend)


def breakdown(timers: Timers, wall: float) -> dict[str, dict[str, float]]:
    """Per timer: total s, calls, ms per call, longest call, share of wall. Names with '/' are parts
    of the name before the '/'."""
    out = {}
    for name in sorted(timers.total, key=lambda n: (n.split("/")[0], "/" in n, n)):
        tot, calls = timers.total[name], timers.calls[name]
        out[name] = {"total_s": round(tot, 4), "calls": calls, "ms_per_call": round(1e3 * tot / max(calls, 1), 3),
                     "longest_ms": round(1e3 * timers.longest[name], 3), "share_of_wall": round(tot / wall, 5)}
    return out


def run_rlpop(cfg: BenchConfig, backend: str, workdir: Path) -> dict[str, Any]:
    """One rlpop PBT run through ``rlpop.run.execute``, instrumented; returns its record."""
    from rlpop.run import execute
    from rlpop.store import RunDir

    exp = build_experiment(cfg, backend)
    run = RunDir.create(workdir, f"{cfg.name}-{backend}")
    run.write_config({**exp.to_dict(), "backend": backend})
    timers = Timers()
    listener = RunListener(timers)
    load_before = load_average()
    t0 = time.perf_counter()
    with gc_pauses(timers), contextlib.redirect_stdout(io.StringIO()):
        execute(exp, run, backend, quiet=True, listeners=[listener])
    execute_s = time.perf_counter() - t0
    last = listener.last
    wall, train_s = last.wall_s, last.train_s
    slots = 1 if backend == "inline" else cfg.population
    env_steps = sum(w.steps for w in last.members)
    train_workers = listener.worker_train_s
    top = {n: t for n, t in timers.total.items() if "/" not in n and not n.startswith("python gc")}
    outside = wall - train_s
    items = breakdown(timers, wall)
    items["other (controller bookkeeping, untimed)"] = {
        "total_s": round(outside - sum(top.values()), 4), "calls": last.round, "ms_per_call": None,
        "share_of_wall": round((outside - sum(top.values())) / wall, 5)}
    share = outside_training_share(train_workers, wall, slots)
    start_s = listener.start_s
    steady = outside_training_share(train_workers, wall - start_s, slots)
    n_ckpt = timers.calls.get("checkpoint", 0)
    return {
        "config": cfg.name, "impl": f"rlpop-{backend}", "env": cfg.env, "population": cfg.population,
        "settings": asdict(cfg), "slots": slots, "wall_s": round(wall, 3), "execute_s": round(execute_s, 3),
        "train_s_workers_sum": round(train_workers, 3), "train_s_controller": round(train_s, 3),
        "outside_share": round(share, 5), "meets_2pct_bar": share <= BAR,
        "worker_startup_s": round(start_s, 3), "outside_share_excl_startup": round(steady, 5),
        "meets_2pct_bar_excl_startup": steady <= BAR,
        "outside_share_controller_view": round(1 - train_s / wall, 5),
        "outside_share_controller_view_excl_startup": round(1 - train_s / (wall - start_s), 5),
        "env_steps": env_steps,
        "env_steps_per_s": round(env_steps / wall, 1),
        "env_steps_per_s_excl_startup": round(env_steps / (wall - start_s), 1),
        "rounds": last.round, "exploits": last.counts["exploit"], "checkpoints": n_ckpt,
        "checkpoint_ms_per_member": round(1e3 * timers.total.get("checkpoint", 0.0) / max(1, n_ckpt)
                                          / cfg.population, 3),
        "checkpoint_bytes": _latest_ckpt_size(run.path),
        "breakdown": items, "load_average_before": load_before, "load_average_after": load_average(),
    }


def _latest_ckpt_size(path: Path) -> int | None:
    cks = sorted((path / "checkpoints").glob("ckpt-*.pt"))
    return cks[-1].stat().st_size if cks else None


def warm_up(cfgs: Sequence[BenchConfig]) -> float:
    """One PPO update per env before the timed runs, so the first run does not pay this
    process's one-off imports (torch, gymnasium, mujoco, rlpop.agents), then a full
    ``gc.collect()`` (else the first full collection of the import heap, ~0.6 s, lands in
    whichever run comes first). Returns seconds."""
    from rlpop.agents.batched_ppo import BatchedPPO

    t0 = time.perf_counter()
    for env in sorted({c.env for c in cfgs}):
        hp = next(c.hparams for c in cfgs if c.env == env)
        learner = BatchedPPO(env, [dict(hp)], [0])  # a population of one
        learner.train([0], 1)
        learner.close()
    gc.collect()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- raw env
def raw_env_steps_per_s(env_id: str, steps: int, seed: int = 0) -> float:
    """Random-action steps/s of one env in this process (reset on episode end), actions drawn up front."""
    from rlpop.envs import make_env

    env = make_env(env_id)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


# ---------------------------------------------------------------------------- Ray Tune
def run_tune(cfg: BenchConfig, cores: int, workdir: Path, checkpoint_every: str,
             reuse_actors: bool) -> dict[str, Any]:
    """Ray Tune synchronous PBT on the same PPO; returns its record (``ray`` must be initialised)."""
    import ray.cloudpickle
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    import _overhead_trainable

    ray.cloudpickle.register_pickle_by_value(_overhead_trainable)  # benchmarks/ is not importable remotely
    log_dir = workdir / f"tune-{cfg.name}-log"
    log_dir.mkdir(parents=True)
    trainable = _overhead_trainable.make_ppo_trainable(cfg.env, cfg.hparams, cfg.eval_steps, cfg.ready_steps,
                                                       cfg.total_steps, str(log_dir), checkpoint_every)
    scheduler = PopulationBasedTraining(
        time_attr="steps", metric="q", mode="max", perturbation_interval=cfg.ready_steps,
        hyperparam_mutations={"lr": tune.loguniform(*LR_RANGE)}, quantile_fraction=QUANTILE,
        resample_probability=0.0, perturbation_factors=(max(LR_FACTORS), min(LR_FACTORS)), synch=True)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.loguniform(*LR_RANGE), "seed": tune.randint(0, 2**31 - 1)},
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=cfg.population, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=f"tune-{cfg.name}", storage_path=str(workdir / "tune"), verbose=0,
                                  stop={"steps": cfg.total_steps}))  # stop, rather than pause, at the end
    load_before = load_average()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        grid = tuner.fit()
    wall = time.perf_counter() - t0
    errors = [str(e).splitlines()[0] for e in grid.errors]
    sums: dict[str, float] = {}
    calls: dict[str, int] = {}
    env_steps = 0
    process_start: list[tuple[float, float]] = []  # (when, boot + first setup) per actor process
    for path in log_dir.glob("*.jsonl"):
        boot = fresh = None
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            sums[rec["kind"]] = sums.get(rec["kind"], 0.0) + rec["s"]
            calls[rec["kind"]] = calls.get(rec["kind"], 0) + 1
            env_steps += rec.get("steps", 0)
            boot = rec if rec["kind"] == "boot" else boot
            if rec["kind"] == "setup":
                fresh = rec if rec.get("fresh") else fresh
                sub = "setup_fresh" if rec.get("fresh") else "setup_reused"
                for key, v in ((sub, rec["s"]), ("imports", rec.get("imports", 0.0))):
                    sums[key] = sums.get(key, 0.0) + v
                    calls[key] = calls.get(key, 0) + 1
        if boot is not None and fresh is not None:
            process_start.append((boot["t"], boot["s"] + fresh["s"]))
    slots = min(cfg.population, cores)
    train = sums.get("train", 0.0)
    slot_time = wall * slots
    labels = {"boot": "actor process boot (process age at first trainable call)",
              "setup": "trial (re)start: imports + PPO construction",
              "setup_fresh": "trial (re)start/in a new process",
              "setup_reused": "trial (re)start/in a reused actor",
              "imports": "trial (re)start/imports (all starts)",
              "restore": "checkpoint restore (torch.load + set_state)",
              "save": "checkpoint save (get_state + torch.save)",
              "report": "blocked in tune.report (incl. checkpoint persist)"}
    items = {labels[k]: {"total_s": round(sums[k], 4), "calls": calls[k],
                         "ms_per_call": round(1e3 * sums[k] / calls[k], 3),
                         "share_of_slot_time": round(sums[k] / slot_time, 5)} for k in labels if k in sums}
    rest = slot_time - train - sum(sums.get(k, 0.0) for k in labels if "/" not in labels[k])
    items["rest: actor start-up, scheduling, paused/idle slots"] = {
        "total_s": round(rest, 4), "calls": None, "ms_per_call": None, "share_of_slot_time": round(rest / slot_time, 5)}
    share = outside_training_share(train, wall, slots)
    # one-off start-up: the first `slots` actor processes (Tune needs no more); later process
    # boots are restarts caused by PBT pauses and count as outside training
    startup = sum(cost for _, cost in sorted(process_start)[:slots])
    steady = 1.0 - train / (slot_time - startup)
    return {
        "config": cfg.name, "impl": "ray-tune-pbt", "env": cfg.env, "population": cfg.population,
        "settings": asdict(cfg), "slots": slots, "wall_s": round(wall, 3), "train_s_workers_sum": round(train, 3),
        "outside_share": round(share, 5), "worker_startup_slot_s": round(startup, 3),
        "outside_share_excl_startup": round(steady, 5), "env_steps": env_steps,
        "env_steps_per_s": round(env_steps / wall, 1),
        "env_steps_per_s_excl_startup": round(env_steps / (wall - startup / slots), 1),
        "actor_processes": calls.get("boot", 0), "trial_starts": calls.get("setup", 0),
        "restores": calls.get("restore", 0),
        "checkpoint_every": checkpoint_every, "reuse_actors": reuse_actors, "errors": errors,
        "breakdown": items, "load_average_before": load_before, "load_average_after": load_average(),
    }


# ---------------------------------------------------------------------------- main
def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def findings(rlpop_runs: Sequence[dict[str, Any]]) -> list[str]:
    """Plain sentences: each rlpop run's share vs the bar and its three largest outside-training items."""
    out = []
    for r in rlpop_runs:
        rows = r["breakdown"].items()
        parts = sorted(((v["total_s"], k) for k, v in rows if "/" not in k and not k.startswith("python gc")
                        and v["total_s"]), reverse=True)[:3]
        top = "; ".join(f"{k} {1e2 * s / r['wall_s']:.2f}% of wall" for s, k in parts)
        verdict = "meets" if r["meets_2pct_bar"] else "MISSES"
        steady = "meets" if r["meets_2pct_bar_excl_startup"] else "MISSES"
        out.append(f"{r['impl']} {r['config']}: outside-training share {1e2 * r['outside_share']:.2f}% "
                   f"({verdict} the 2% bar), {1e2 * r['outside_share_excl_startup']:.2f}% without the one-off "
                   f"worker start-up ({steady}); largest: {top}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small configs, whole pipeline in < 3 min")
    p.add_argument("--out", default=str(RESULTS_DIR / "pbt_overhead.json"), help="JSON output path")
    p.add_argument("--configs", nargs="+", help="run only these config names (default: all)")
    p.add_argument("--skip-tune", action="store_true", help="do not run Ray Tune")
    p.add_argument("--skip-ray", action="store_true", help="do not run rlpop's ray backend")
    p.add_argument("--tune-checkpoint", choices=["ready", "report"], default="ready",
                   help="Tune trainable checkpoints every perturbation interval (rlpop's cadence, default) "
                        "or every report")
    p.add_argument("--no-reuse-actors", action="store_true", help="Tune: start a fresh actor for every trial "
                   "(re)start instead of reusing actors (Tune's default is to not reuse)")
    args = p.parse_args(argv)

    all_cfgs = configs(args.quick)
    names = [c.name for c in all_cfgs]
    if args.configs:
        unknown = sorted(set(args.configs) - set(names))
        if unknown:
            p.error(f"--configs: unknown {unknown}; choose from {names}")
    cfgs = [c for c in all_cfgs if not args.configs or c.name in args.configs]
    cores = usable_cores()
    info = machine_info()
    t_all = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "pbt_overhead", "quick": args.quick, "bar_outside_share": BAR, "machine": info,
        "definitions": {
            "outside_share": "1 - (sum over workers of time inside learner training) / (wall x slots)",
            "training": "rlpop: Worker.train (PPO.train) per call, TrainReport.train_s; Tune: PPO.train timed "
                        "inside the trainable",
            "wall": "rlpop: Controller.wall() at the end of Controller.run (controller built -> last round and "
                    "final checkpoint done; worker construction included); Tune: Tuner.fit(). ray.init excluded.",
            "slots": "trainings running at once: rlpop inline 1; rlpop ray = population (all members train "
                     "together, time-sharing the cores); Tune min(population, cores) (1 CPU per trial)",
            "outside_share_excl_startup": "the same with the one-off worker start-up taken out of the slot time: "
                                          "rlpop -- Controller.start (building every worker) x slots; Tune -- for "
                                          "the first `slots` actor processes (all Tune needs), the process's age "
                                          "when the trainable first ran in it (Ray worker boot) + that first "
                                          "start's imports and PPO construction. Further process boots and trial "
                                          "restarts after PBT pauses stay in (they are PBT overhead).",
            "outside_share_controller_view": "rlpop only: 1 - Controller.train_s / wall (Controller.train_s = wall "
                                             "time inside backend.train)",
            "aggregate_efficiency": "(all members' env steps / wall) / (cores x raw Hopper-v5 steps/s)",
        },
        "common_settings": {"ppo": "rlpop PPO defaults (10 epochs, minibatch 64, 64x64, obs+reward norm, "
                                   "torch_threads 1, CPU) plus each config's hparams",
                            "lr": {"dist": "loguniform", "range": LR_RANGE, "explore_factors": LR_FACTORS},
                            "quantile": QUANTILE, "synchronous": True, "seed": SEED},
        "notes": [
            "The box is shared with other jobs: load averages are recorded before/after every run. Wall-time "
            "shares on a loaded box include other processes' CPU use, which slows training and overhead alike.",
            "Ready intervals here are tiny (512-2048 env steps) to fit in minutes. Checkpoints, copies and logs "
            "cost a fixed time per member per interval while training grows with the interval, so at production "
            "intervals (50k+ steps) these shares shrink by the same factor.",
            "rlpop-ray's slot share counts a member that finished its round and waits for the round's stragglers "
            "as outside training, even though the cores are still busy with other members (8 members time-share 2 "
            "cores); the controller view does not.",
            "Tune stops trials at total_steps (stop={'steps': total}) instead of pausing them for a last "
            "perturbation; rlpop still decides (and copies) after its last round.",
        ],
        "raw_env": {}, "rlpop": [], "tune": [],
    }
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="pbt_overhead-") as tmp:
        work = Path(tmp)
        result["warm_up_s"] = round(warm_up(cfgs), 2)
        hopper = any(c.env == "Hopper-v5" for c in cfgs)
        if hopper:
            sps = raw_env_steps_per_s("Hopper-v5", 5_000 if args.quick else 30_000)
            result["raw_env"]["Hopper-v5"] = {"steps_per_s": round(sps, 1), "load_average": load_average()}
            print(f"raw Hopper-v5: {sps:,.0f} steps/s", flush=True)
        for cfg in cfgs:
            rec = run_rlpop(cfg, "inline", work)
            result["rlpop"].append(rec)
            print(f"rlpop inline {cfg.name}: wall {rec['wall_s']:.1f}s outside {1e2 * rec['outside_share']:.2f}%",
                  flush=True)
            write_json(out, result)
        eff_name = efficiency_config(args.quick)
        ray_cfgs = [c for c in cfgs if c.name == eff_name] if not args.skip_ray else []
        if ray_cfgs or not args.skip_tune:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     configure_logging=True)
            result["ray_init_s"] = round(time.perf_counter() - t0, 2)
            try:
                for cfg in ray_cfgs:
                    rec = run_rlpop(cfg, "ray", work)
                    result["rlpop"].append(rec)
                    print(f"rlpop ray {cfg.name}: wall {rec['wall_s']:.1f}s outside "
                          f"{1e2 * rec['outside_share']:.2f}%", flush=True)
                    write_json(out, result)
                if not args.skip_tune:
                    # --quick: Tune on the Corridor config only (each Tune run pays Ray actor start-ups)
                    for cfg in [c for c in cfgs if not args.quick or c.env == "Corridor-v0"]:
                        rec = run_tune(cfg, cores, work, args.tune_checkpoint, not args.no_reuse_actors)
                        result["tune"].append(rec)
                        print(f"tune {cfg.name}: wall {rec['wall_s']:.1f}s outside "
                              f"{1e2 * rec['outside_share']:.2f}%", flush=True)
                        write_json(out, result)
            finally:
                ray.shutdown()
    # side by side and the Hopper efficiency
    rows = []
    for cfg in cfgs:
        row: dict[str, Any] = {"config": cfg.name}
        for rec in result["rlpop"] + result["tune"]:
            if rec["config"] == cfg.name:
                row[rec["impl"]] = {"outside_share": rec["outside_share"],
                                    "outside_share_excl_startup": rec["outside_share_excl_startup"],
                                    "wall_s": rec["wall_s"],
                                    "env_steps_per_s": rec["env_steps_per_s"], "slots": rec["slots"]}
        rows.append(row)
    result["side_by_side"] = rows
    raw = result["raw_env"].get("Hopper-v5", {}).get("steps_per_s")
    eff = {}
    for rec in result["rlpop"] + result["tune"]:
        if rec["config"] == eff_name and raw:
            used = cores if rec["slots"] > 1 else 1
            sps, sps_steady = rec["env_steps_per_s"], rec["env_steps_per_s_excl_startup"]
            eff[rec["impl"]] = {"aggregate_env_steps_per_s": sps, "cores": cores, "raw_steps_per_s": raw,
                                "ratio_vs_all_cores": round(sps / (cores * raw), 5),
                                "cores_it_used": used, "ratio_vs_cores_it_used": round(sps / (used * raw), 5),
                                "aggregate_env_steps_per_s_excl_startup": sps_steady,
                                "ratio_vs_all_cores_excl_startup": round(sps_steady / (cores * raw), 5)}
    result["hopper_efficiency"] = {"config": eff_name, **eff}
    result["findings"] = findings(result["rlpop"])
    result["machine"]["load_average_at_end"] = load_average()
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    write_json(out, result)
    print("\n".join(result["findings"]))
    print(f"wrote {out} ({result['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
