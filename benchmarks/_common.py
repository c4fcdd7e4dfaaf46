"""Shared helpers for rlpop's benchmark scripts: machine description, the JSON report
(:class:`Report`), the process runner (:func:`run_jobs`) and the learning-curve
trainer the returns benchmarks share (:func:`train_returns`).

Every benchmark JSON carries :func:`machine_info` so a number is never read
without the box, the library versions, the load and the command that made it.
"""
from __future__ import annotations

import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import queue
import shlex
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

#: where the scripts write by default
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (what ``uptime`` prints), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model and cores, library versions, date, command line and current load."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {d: _version(d) for d in ("torch", "gymnasium", "stable_baselines3", "mujoco", "numpy",
                                              "rlpop")},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "load_average_at_start": load_average(),
    }


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically (temp file + rename), so a
    reader or a killed run never sees half a file. Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> plain Python for json.dumps."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def parse_layout(text: str) -> dict[str, int]:
    """``"num_actors=2,envs_per_actor=4"`` -> ``{"num_actors": 2, "envs_per_actor": 4}``.

    Raises ValueError naming the bad part and the expected form.
    """
    allowed = {"num_actors", "envs_per_actor"}
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(f"--layout: bad part {part!r}; write e.g. 'num_actors=2,envs_per_actor=4' "
                             f"(keys: {sorted(allowed)})")
        try:
            out[key] = int(value)
        except ValueError:
            raise ValueError(f"--layout: {key} must be an integer, got {value!r}") from None
    if out.get("num_actors", 0) < 0 or out.get("envs_per_actor", 1) < 1:
        raise ValueError(f"--layout: need num_actors >= 0 and envs_per_actor >= 1, got {out}")
    return out


# ------------------------------------------------------------------ the report
class Report:
    """A benchmark's JSON document at ``path``: ``benchmark`` (its name), ``machine``
    (:func:`machine_info`: the command line, the library versions and the load at the
    start), then ``fields``; :meth:`save` rewrites the file atomically (call it after
    every result, so a killed run keeps what it measured), :meth:`finish` adds the load
    at the end (``machine.load_average_at_end``) and any last fields, and saves."""

    def __init__(self, path: str | os.PathLike, benchmark: str, **fields: Any):
        self.path = Path(path)
        self.doc: dict[str, Any] = {"benchmark": benchmark, "machine": machine_info(), **fields}

    def save(self) -> Path:
        return write_json(self.path, self.doc)

    def finish(self, **fields: Any) -> Path:
        self.doc.update(fields)
        self.doc["machine"]["load_average_at_end"] = load_average()
        return self.save()


# ------------------------------------------------------------------ the runner
Emit = Callable[[dict[str, Any]], None]


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _child(name: str, fn: Callable[..., Any], args: tuple, q) -> None:
    # a shell starts a background job with SIGINT ignored, and children inherit that;
    # the default action makes a child end on SIGINT however the parent was started
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        fn(*args, q.put)
    except BaseException as exc:  # noqa: BLE001 - report, then let the process end
        q.put({"kind": "error", "job": name, "error": repr(exc)})
        raise


def run_jobs(jobs: Iterable[tuple[str, Callable[..., Any], tuple]], on_event: Emit, parallel: int = 1,
             deadline: float | None = None) -> dict[str, list[str]]:
    """Run each job ``(name, fn, args)`` as ``fn(*args, emit)`` in its own spawned process,
    at most ``parallel`` at once, in order; every ``emit(event)`` of a child reaches
    ``on_event`` in this process (through a queue), and a child that raises emits
    ``{"kind": "error", "job": name, "error": ...}``. ``fn`` must be a module-level function
    and ``args`` picklable. No job starts after ``deadline`` (``time.time()``; the jobs get
    it in their ``args`` to stop cleanly themselves). Returns ``{"failed": names whose
    process exited non-zero, "not_started": names the deadline left out}``.

    SIGTERM (``kill``) is turned into KeyboardInterrupt in this process from the first
    call on, so ``kill`` ends a benchmark like Ctrl-C; on KeyboardInterrupt the running
    children are terminated before it propagates."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    pending, running = list(jobs), {}
    out: dict[str, list[str]] = {"failed": [], "not_started": []}

    def drain(timeout: float) -> None:
        try:
            on_event(q.get(timeout=timeout))
            while True:
                on_event(q.get_nowait())
        except queue.Empty:
            pass

    try:
        while pending or running:
            while pending and len(running) < parallel:
                name, fn, args = pending.pop(0)
                if deadline is not None and time.time() > deadline:
                    out["not_started"].append(name)
                    continue
                p = ctx.Process(target=_child, args=(name, fn, args, q), name=name)
                p.start()
                running[name] = p
            drain(2.0)
            for name, p in list(running.items()):
                if not p.is_alive():
                    p.join()
                    drain(0.5)  # its last events
                    if p.exitcode:
                        out["failed"].append(name)
                    del running[name]
    finally:
        for p in running.values():
            if p.is_alive():
                p.terminate()
        for p in running.values():
            p.join(timeout=10)
    return out


# ------------------------------------------------------------------ learning curves
def mean_or_none(xs: list[float]) -> float | None:
    """Mean of ``xs`` (None when empty: no episode finished)."""
    return float(sum(xs) / len(xs)) if xs else None


class OneMember:
    """rlpop's PPO or V-MPO as a single run: a population of one (the batched learner with K = 1), with the
    single-learner calls the benchmarks make (``train(steps)``, ``get_hparams()``, ``multipliers()``)."""

    def __init__(self, cls: type, env_id: str, hparams: dict[str, Any], seed: int):
        self.learner = cls(env_id, [hparams], [seed])
        self.device = self.learner.device

    def train(self, steps: int):
        return self.learner.train([0], steps)[0]

    def get_hparams(self) -> dict[str, Any]:
        return self.learner.get_hparams(0)

    def multipliers(self) -> dict[str, float]:
        return self.learner.multipliers(0)

    def close(self) -> None:
        self.learner.close()


def make_learner(algo: str, env_id: str, hparams: dict[str, Any], seed: int) -> OneMember:
    """rlpop's ``PPO`` or ``VMPO`` (``algo``: ``"ppo"`` or ``"vmpo"``) as a population of one."""
    from rlpop.agents import BATCHED, batched_learner_class

    if algo not in BATCHED:
        raise ValueError(f"algo must be 'ppo' or 'vmpo', got {algo!r}")
    return OneMember(batched_learner_class(algo), env_id, hparams, seed)


def train_returns(key: str, algo: str, env_id: str, hparams: dict[str, Any], seed: int, steps: int, every: int,
                  deadline: float | None, emit: Emit) -> None:
    """Train one learner for ``steps`` env steps, one rollout per ``train`` call, emitting
    ``{"kind": "point", "key": key, ...}`` when it first passes each multiple of ``every``
    steps (and at the end, and at the deadline) and ``{"kind": "final", "key": key, ...}``.

    A point has the episodes that finished since the previous point (``window_start``,
    ``episodes_in_window``, ``mean_return_window``; ``partial_window`` when the deadline cut
    it short, or the budget ended off the grid), the mean of the last 20 episodes, the episode count, wall and CPU seconds
    since the learner's construction began, and the load. A run still going at
    ``deadline`` (``time.time()``) stops after its current rollout (``stopped_early``).
    The final record: steps, wall seconds (start-up included; ``startup_seconds`` is the
    construction), CPU seconds, steps/s with and without the start-up, steps per
    CPU-second, the mean of the last 20 and 100 episodes, episodes, the learner's device."""
    t0, c0 = time.perf_counter(), time.process_time()
    learner = make_learner(algo, env_id, hparams, seed)
    startup = time.perf_counter() - t0
    rollout = int(learner.get_hparams()["rollout_steps"])
    returns: list[float] = []
    in_window: list[float] = []
    done, window_start, next_point, stopped_early = 0, 0, every, False
    try:
        while done < steps:
            result = learner.train(rollout)
            done += result.steps
            returns += result.episode_returns
            in_window += result.episode_returns
            late = deadline is not None and time.time() > deadline and done < steps
            if done >= next_point or done >= steps or late:
                emit({"kind": "point", "key": key, "steps": done, "window_start": window_start,
                      "partial_window": done < next_point,
                      "episodes_in_window": len(in_window), "mean_return_window": mean_or_none(in_window),
                      "mean_return_last20": mean_or_none(returns[-20:]), "episodes": len(returns),
                      "wall_seconds": round(time.perf_counter() - t0, 1),
                      "cpu_seconds": round(time.process_time() - c0, 1), "load_average": load_average()})
                window_start, in_window = done, []
                while next_point <= done:
                    next_point += every
            if late:
                stopped_early = True
                break
        device = str(learner.device)
    finally:
        learner.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    emit({"kind": "final", "key": key, "steps": done, "wall_seconds": round(wall, 1),
          "startup_seconds": round(startup, 2), "cpu_seconds": round(cpu, 1),
          "steps_per_sec": round(done / wall, 1),
          "train_steps_per_sec": round(done / max(wall - startup, 1e-9), 1),
          "steps_per_cpu_sec": round(done / max(cpu, 1e-9), 1),
          "final_mean_return_last20": mean_or_none(returns[-20:]),
          "final_mean_return_last100": mean_or_none(returns[-100:]), "episodes": len(returns),
          "stopped_early": stopped_early, "learner_device": device})
