"""Does FIRE show in the README's quick job? Evaluator successes of experiments/quick_fire.py over seeds.

    python benchmarks/quick_fire_successes.py [--seeds 0 1 2] [--runs-dir /tmp/rlpop-quick-fire]
                                              [--set KEY=VALUE ...] [--out JSON] [--parallel]

Runs ``python -m rlpop.run experiments/quick_fire.py --set seed=S --runs-dir DIR --quiet`` (the README's main
command, through the CLI; one run after the other, or all at once with ``--parallel``) for each seed, then reads each run directory with
``rlpop.summary.summarise``: evaluator successes, exploits, best final Q (the highest Q of any member at its
last evaluation), the area under the top-return curve, env steps and wall time; also the lowest success
p-value and the evaluator stop reasons from decisions.jsonl. ``--set`` passes extra overrides to every run.
Writes ``benchmarks/results/quick_fire_successes.json`` with the command, versions and load averages
(:func:`_common.machine_info`; load before and after each run too).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402


def stop_reasons(decisions: list[dict]) -> dict[str, int]:
    """Evaluator stop reasons with their numbers replaced by '#', counted."""
    num = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?")
    return dict(collections.Counter(num.sub("#", str(d.get("reason", ""))) for d in decisions
                                    if d.get("kind") == "stop"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs-dir", type=Path, default=Path("/tmp/rlpop-quick-fire"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--experiment", default="experiments/quick_fire.py")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "quick_fire_successes.json")
    p.add_argument("--parallel", action="store_true",
                   help="run the seeds at the same time (each run's wall time then includes the others' load)")
    args = p.parse_args(argv)

    from rlpop.run import load_experiment
    from rlpop.lineage import read_decisions
    from rlpop.summary import summarise

    exp = load_experiment(ROOT / args.experiment)
    info = machine_info()
    t0 = time.time()
    runs = []
    jobs = []
    for seed in args.seeds:
        cmd = [sys.executable, "-m", "rlpop.run", args.experiment, "--set", f"seed={seed}"]
        for s in args.sets:
            cmd += ["--set", s]
        cmd += ["--runs-dir", str(args.runs_dir), "--quiet"]
        jobs.append((seed, cmd))

    def start(seed: int, cmd: list[str]) -> dict:
        shown = shlex.join(["python", *cmd[1:]])
        print(f"[seed {seed}] {shown}", flush=True)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return {"seed": seed, "shown": shown, "proc": proc, "t": time.time(), "load0": load_average()}

    def finish(job: dict) -> dict:
        out, _ = job["proc"].communicate()
        wall = time.time() - job["t"]
        seed = job["seed"]
        m = re.search(r"run directory: (\S+)", out or "")
        rec = {"seed": seed, "command": job["shown"], "rc": job["proc"].returncode, "process_wall_s": round(wall, 1),
               "ran_in_parallel_with": len(jobs) - 1 if args.parallel else 0,
               "load_average_before": job["load0"], "load_average_after": load_average()}
        if job["proc"].returncode != 0 or not m:
            rec["error_tail"] = (out or "")[-2000:]
        if m:
            run_dir = Path(m.group(1))
            rec["run_dir"] = str(run_dir)
            row = summarise(run_dir)
            rec.update({k: row[k] for k in ("successes", "exploits", "best_final_q", "best_worker", "auc",
                                            "wall_s", "env_steps", "finished")})
            dec = read_decisions(run_dir)
            pv = [d.get("p_value") for d in dec if d.get("kind") == "success" and d.get("p_value") is not None]
            rec["success_p_values"] = pv
            rec["evaluator_stops"] = stop_reasons(dec)
        print(f"[seed {seed}] successes={rec.get('successes')} exploits={rec.get('exploits')} "
              f"best_final_q={rec.get('best_final_q')} wall={wall:.0f}s", flush=True)
        return rec

    if args.parallel:
        started = [start(seed, cmd) for seed, cmd in jobs]
        runs = [finish(j) for j in started]
    else:
        runs = [finish(start(seed, cmd)) for seed, cmd in jobs]

    ok = [r for r in runs if "successes" in r]
    result = {
        "benchmark": "quick_fire_successes",
        "experiment": args.experiment,
        "extra_overrides": args.sets,
        "strategy": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(exp.strategy).items()},
        "total_steps": exp.total_steps,
        "eval_steps": exp.eval_steps,
        "env": exp.env,
        "runs": runs,
        "seeds_with_success": sum(1 for r in ok if r["successes"] >= 1),
        "seeds": len(runs),
        "total_wall_s": round(time.time() - t0, 1),
        "load_average_at_end": load_average(),
        "machine": info,
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("seeds_with_success", "seeds", "total_wall_s")}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
