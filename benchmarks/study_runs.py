"""The study's runs on disk and in time: where each (method, seed) run lives, whether it finished, and one sitting.

Every run has its own folder ``<study>/<method>_seed<k>/`` (given to ``rlpop run --runs-dir``), holding the one
run directory rlpop makes there. :func:`run_state` reads it: ``missing`` (no run directory with a config.json),
``finished`` (:attr:`rlpop.runs.Run.finished`: status.json says so and curves.csv is whole) or ``unfinished``
(killed, interrupted or still running elsewhere: ``rlpop run --resume DIR`` continues it). :func:`sitting` runs
the plan in order through the CLI: finished runs are skipped, unfinished ones resumed, missing ones started; no
run starts after ``max_minutes``; a run interrupted by Ctrl-C or SIGTERM ends the sitting. While a run goes, the
machine's 1-minute load average is sampled (each wait on the child returns when it exits, or after
``sample_s``) and logged with the sitting in ``<study>/sittings.jsonl``.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def rel(p: Path) -> str:
    """``p`` as the JSON records it: relative to the repository when inside it, else absolute."""
    p = Path(p).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def run_folder(study: Path, method: str, seed: int) -> Path:
    return Path(study) / f"{method}_seed{seed}"


def run_dirs(folder: Path) -> list[Path]:
    """The run directories (folders with a config.json) in ``folder``, oldest name first."""
    return sorted(d for d in Path(folder).glob("*") if (d / "config.json").is_file()) if Path(folder).is_dir() \
        else []


def _round(d: Path) -> int:
    try:
        return int(json.loads((d / "status.json").read_text()).get("round") or 0)
    except (OSError, ValueError):
        return 0


def run_state(folder: Path) -> tuple[str, Path | None]:
    """("missing" | "finished" | "unfinished", the run directory). With several run directories in one folder
    (a start that failed, then another): a finished one, else the one that got furthest."""
    from rlpop.runs import load_run

    dirs = run_dirs(folder)
    if not dirs:
        return "missing", None
    for d in dirs:
        try:
            if load_run(d).finished:
                return "finished", d
        except Exception:  # noqa: BLE001 -- an unreadable run directory is not finished
            continue
    return "unfinished", max(dirs, key=lambda d: (_round(d), d.name))


def new_command(exp_file: Path, sets: list[str], folder: Path) -> list[str]:
    return [sys.executable, "-m", "rlpop.run", str(exp_file), *sets, "--runs-dir", str(folder), "--quiet"]


def resume_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rlpop.run", "--resume", str(run_dir), "--quiet"]


def shown(cmd: list[str]) -> str:
    return shlex.join(["python", *cmd[1:]])


def run_child(cmd: list[str], log: Path, sample_s: float = 30.0) -> tuple[int, float, list[float]]:
    """Run ``cmd`` (output appended to ``log``); (exit code, wall seconds, 1-minute load samples)."""
    t0 = time.time()
    loads = [os.getloadavg()[0]]
    with log.open("a") as fh:
        fh.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shown(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, text=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=sample_s)
                    break
                except subprocess.TimeoutExpired:
                    loads.append(os.getloadavg()[0])
        except KeyboardInterrupt:  # Ctrl-C reaches the child too (same process group): let it stop and say so
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # only this process was interrupted: pass it on
                proc.send_signal(signal.SIGINT)
                rc = proc.wait()
    loads.append(os.getloadavg()[0])
    return rc, time.time() - t0, [round(x, 2) for x in loads]


def sitting(study: Path, plan: list[tuple[str, int, Callable[[Path], list[str]]]], max_minutes: float | None = None,
            say: Callable[[str], None] = print, sample_s: float = 30.0) -> list[dict[str, Any]]:
    """Run ``plan`` -- (method, seed, new-run command for a folder) in order -- as one sitting; returns (and
    appends to ``<study>/sittings.jsonl``) one record per run touched."""
    study = Path(study)
    (study / "logs").mkdir(parents=True, exist_ok=True)
    t_start, out = time.time(), []
    for method, seed, make_cmd in plan:
        folder = run_folder(study, method, seed)
        state, run_dir = run_state(folder)
        tag = f"[{method} seed {seed}]"
        if state == "finished":
            say(f"{tag} finished: {run_dir}")
            continue
        if max_minutes is not None and time.time() - t_start > 60 * max_minutes:
            say(f"{tag} not started: --max-minutes {max_minutes:g} reached ({state}); run the command again to go on")
            continue
        cmd = resume_command(run_dir) if state == "unfinished" else make_cmd(folder)
        folder.mkdir(parents=True, exist_ok=True)
        say(f"{tag} {'resuming' if state == 'unfinished' else 'starting'}: {shown(cmd)}")
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        rc, wall, loads = run_child(cmd, study / "logs" / f"{method}_seed{seed}.log", sample_s)
        state_after, run_dir = run_state(folder)
        rec = {"method": method, "seed": seed, "action": "resume" if state == "unfinished" else "start",
               "started": started, "rc": rc, "wall_s": round(wall, 1), "load1_samples": loads,
               "state_after": state_after, "run_dir": str(run_dir) if run_dir else None, "command": shown(cmd)}
        with (study / "sittings.jsonl").open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        out.append(rec)
        say(f"{tag} rc={rc} wall={wall:.0f}s -> {state_after} ({run_dir})"
            + ("" if rc in (0, 130, 143) else f"; see {study / 'logs' / f'{method}_seed{seed}.log'}"))
        if rc in (130, 143, -2, -15):  # interrupted or terminated: the sitting ends here
            say(f"{tag} interrupted: the sitting stops; run the command again to resume it")
            break
    return out


def read_sittings(study: Path) -> list[dict[str, Any]]:
    p = Path(study) / "sittings.jsonl"
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
