"""Issue 25's start-up bar: the paper's command starts within 3 minutes under 12 GB.

    python benchmarks/humanoid_fire_start.py [--watch 90] [--out benchmarks/results/humanoid_fire_start.json]

Runs ``python -m rlpop.run experiments/humanoid_fire.py`` (50 V-MPO workers, Ray backend, as a user types it) in
a temporary runs directory and records: seconds until the run directory is announced, seconds until the first
progress line with env steps > 0, the peak memory of the whole process tree (every 0.25 s) by then and over
``--watch`` seconds, the progress lines' steps/s; then sends Ctrl-C (SIGINT to the run's process group, as a
terminal does) and records how the run ended and whether any process carrying the run's environment tag
outlived it (10 s grace; Ray's re-parented processes included).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402
from population_throughput import TreeMemory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = re.compile(r"env steps ([\d,]+) .*SPS\s+(\d+)")
BAR_S, BAR_GB = 180.0, 12.0


def tagged(tag: str) -> list:
    """Live processes whose environment carries ``tag`` (children re-parented by Ray included)."""
    import psutil

    out = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE and p.environ().get("RLPOP_BENCH_TAG") == tag:
                out.append(p)
        except (psutil.Error, OSError):
            pass
    return out


def main(argv=None) -> int:
    import psutil

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--watch", type=float, default=90.0, help="seconds to keep the run going after it starts")
    p.add_argument("--out", default=str(RESULTS_DIR / "humanoid_fire_start.json"))
    args = p.parse_args(argv)
    rec: dict = {"machine": machine_info(), "load_before": load_average(), "bar": {"start_s": BAR_S, "gb": BAR_GB}}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rlpop.run", "experiments/humanoid_fire.py", "--runs-dir", tmp]
        tag = f"humanoid-fire-start-{os.getpid()}-{time.time_ns()}"  # in every process the run starts
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "RLPOP_BENCH_TAG": tag},
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        mem = TreeMemory(proc.pid)
        tree: set[int] = set()
        lines, sps = [], []
        run_dir_s = first_steps_s = peak_at_start = None
        deadline = None
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            try:
                tree |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
            line = proc.stdout.readline()
            if not line:
                if deadline is not None and time.perf_counter() > deadline:
                    break
                if time.perf_counter() - t0 > BAR_S + args.watch:
                    break
                time.sleep(0.1)
                continue
            lines.append(line.rstrip())
            now = time.perf_counter() - t0
            if run_dir_s is None and line.startswith("run directory:"):
                run_dir_s = now
            m = STEPS.search(line)
            if m:
                sps.append(int(m.group(2)))
                if first_steps_s is None and int(m.group(1).replace(",", "")) > 0:
                    first_steps_s, peak_at_start = now, mem.peak / 2**30
                    deadline = time.perf_counter() + args.watch
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        os.set_blocking(proc.stdout.fileno(), True)
        lines += [x.rstrip() for x in proc.stdout.read().splitlines()]
        peak = mem.stop() / 1024
        gone, alive = psutil.wait_procs(tagged(tag), timeout=10)
        rec.update({
            "command": " ".join(cmd[1:4] + ["--runs-dir", "TMP"]), "run_directory_s": run_dir_s,
            "first_env_steps_s": first_steps_s, "peak_gb_at_first_steps": peak_at_start,
            "watch_s": args.watch, "peak_gb": peak, "steps_per_s_lines": sps, "returncode_after_ctrl_c": rc,
            "processes_seen": len(tree), "left_running": [p.pid for p in alive], "load_after": load_average(),
            "last_lines": lines[-4:],
            "bar_met": bool(first_steps_s is not None and first_steps_s <= BAR_S and peak <= BAR_GB and not alive),
        })
    print({k: v for k, v in rec.items() if k not in ("machine", "last_lines")})
    print(f"wrote {write_json(args.out, rec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
