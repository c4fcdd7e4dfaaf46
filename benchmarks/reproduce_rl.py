"""The paper's RL comparison, scaled down: random search vs PBT vs FIRE PBT on one env (Fig. 4a / Fig. 5).

    python benchmarks/reproduce_rl.py [--env hopper|humanoid|ant|invpend] [--seeds 0 1 2] [--budget 51200]
                                      [--rollout 512] [--members 16] [--subpop-size 6] [--evaluators 4]
                                      [--study-dir DIR] [--figures docs/figures] [--out JSON]
                                      [--max-minutes M] [--only-methods fire pbt rs pb2 asha asha_tpe]
                                      [--threshold Q] [--space-set K=V]
                                      [--dry-run]

The study in benchmarks/results/reproduce_hopper.json is **seed 0 only** (3 seeds did not fit the hour on the
shared, loaded 2-core machine): the three runs of ``--env hopper --budget 25600 --seeds 0`` (``--dry-run``
prints them) were started by hand (FIRE, then PBT and RS side by side) and aggregated with
``python benchmarks/reproduce_rl.py --env hopper --budget 25600 --seeds 0 --study-dir DIR --aggregate-only
--figures docs/figures``.

Each method runs from its experiment file (``experiments/<env>_rs.py``, ``<env>_pbt.py``, ``<env>_fire.py``)
through the real CLI (``python -m rlpop.run EXP --set ... --runs-dir STUDY/runs --quiet``), one process per
run, one after the other (the batched engine already uses the machine's cores), in the order seed 0: FIRE, PBT,
RS; seed 1: ...; so a study cut short by ``--max-minutes`` (no new run starts after it) still holds whole
seeds. A run already finished in the study folder for a (method, seed) is not run again (rerun the command to
complete a study). Then ``python -m rlpop.summary`` (``STUDY/summary.csv`` + ``.md``) and ``python -m
rlpop.plot`` (``STUDY/figures``) run on all of the runs; ``--figures DIR`` copies the top-return figure and,
for the first seed, the FIRE and PBT hparam and population figures into DIR as ``<env>_*.png``. The JSON
(default ``benchmarks/results/reproduce_<env>.json``) has per run: method, seed, best final Q, area under the
top-return curve (its mean height), exploits, evaluator successes, env steps, wall time and the command; per
method: median, min and max of best final Q and AUC; the study's settings, wall time and machine (versions,
load averages).

**Equal workers, equal budget per worker.** RS and PBT: ``--members`` members (16). FIRE: 2 sub-populations
of ``--subpop-size`` (6) + ``--evaluators`` (4) = 16 workers (the paper: 18 + 18 + 14 = 50; evaluators are
3/4 of the parent sub-population there, 4/6 here). Every member trains ``--budget`` actor steps; a FIRE
evaluator trains at most that, only while assigned (so FIRE spends at most, not exactly, the same steps).
Results are per actor step (each worker's own counter), so the machine's load does not bias them; wall time is
reported anyway.

**The paper's ratios to the budget** (section 4.2: 6e9 actor steps per worker; ready and evaluator checks
every 6e7 = 1/100; max_eval_steps 6e8 = 1/10 = 10 ready intervals; P2's min_steps_before_eval 1e9 = 1/6),
kept as follows:

- ready interval = budget / 100, rounded up to whole PPO rollouts and at least one rollout (a member is ready
  only between updates). With ``--budget 51200 --rollout 512`` it is exactly 1/100 (512 steps, one rollout).
  **The study in benchmarks/results/reproduce_hopper.json ran ``--budget 25600``** (what fitted ~40 minutes on
  the shared 2-core machine next to other jobs, at ~1,000-2,000 env steps/s in aggregate for 16 Hopper
  members once the space below was narrowed; ~200 before): the ready
  interval stays one 512-step rollout, so it is **1/50** of that budget. A shorter rollout was not possible:
  the Hopper search space's minibatch_size choices go up to 512, which a rollout must hold. The PPO rollout is
  512 steps instead of the Hopper files' 2048 for the same reason (a ready interval at 1/100 of the budget must
  hold a rollout).
- Q interval (``eval_steps``) = the ready interval (it cannot be longer, and a Q point inside a rollout would
  re-measure the same weights; the paper does not give its RL Q interval), so an evaluator adds one curve point
  per check.
- max_eval_steps = 10 ready intervals (the paper's 6e8 / 6e7): 1/10 of the budget at ready = budget / 100,
  **1/5** at budget 25,600. 10 points: a success at p < p_stat = 0.01 needs 7 points all above the child
  (0.5**7 < 0.01), so it is reachable; at 1/10 of 25,600 (5 points) it would not be.
- min_steps_before_eval (P2) = budget / 6, rounded up to whole rollouts (8,704 at 51,200; 4,608 = 1/5.6 at
  25,600).
- Same search space, initial distributions and perturbation factors for all methods: the experiment files',
  **except** that for Hopper the study narrows PPO's epochs from 3..15 (bounds 1..30) to 3..6 (bounds 1..10)
  and minibatch_size from {32, ..., 512} to {128, 256, 512} (``--space-set``; DEFAULT_SPACE_SETS): with the
  full ranges a batched update of 16 members took ~1 CPU-s per member per rollout here (small minibatches,
  minibatch groups updated one after the other), 5-10x the env stepping, and no three seeds would fit. PPO,
  not V-MPO, for Hopper (the paper's agent is V-MPO on Ant-v1 / Humanoid-v1; rlpop's V-MPO is slower to
  learn at small budgets, see benchmarks/results/vmpo_returns.json).

**The six-method study on InvertedPendulum-v5** (``--env invpend``; benchmarks/results/reproduce_invpend.json):
RS, RS+ASHA (``asha``), BO+ASHA (``asha_tpe``: ASHA with Optuna's TPE proposing new trials), PBT, PB2 and FIRE
PBT from ``experiments/invpend_<method>.py``, 8 workers per run (RS, ASHA slots, PBT, PB2: 8 members; FIRE: 2
sub-populations of 3 + 2 evaluators) and the same PPO space and initial distributions (lr log-uniform
1e-5..1e-2, clip 0.05..0.5; 4 epochs, minibatch 256 fixed), run as::

    python benchmarks/reproduce_rl.py --env invpend --budget 20480 --rollout 512 --members 8 --subpop-size 3 \
        --evaluators 2 --seeds 0 1 2 --max-minutes 36 --figures docs/figures

ready = one 512-step rollout (1/40 of the budget, the paper's 1/100 would be 205 steps < a rollout); FIRE as
above (max_eval_steps 5,120, P2 from 3,584). ASHA: ``max_t`` = the whole budget (a trial never cut trains as
long as an RS member), ``grace_period`` = 3 ready intervals (1,536), reduction factor 3 (rungs at 1,536, 4,608
and 13,824 steps); each slot trains the budget in all, over however many trials, and its results (the
top-return curve, the steps to the target) count the slot's steps over all its trials
(:func:`rlpop.summary.slot_steps`), so every method is compared at the actor steps it spent. The JSON adds per
run ``steps_to_target`` (``--threshold``, default 900 for invpend: the first actor step per worker at which the
top-return curve reaches it; ``rlpop.summary --threshold``) and ``trials_restarted`` (ASHA), and per method the
steps to the target (median and range over the runs reaching it, how many did, and the median over all runs
with a miss counted as later than any hit).

Issue 26's study at scale (settings frozen after a pilot, runs resumed across sittings) has its own runner,
benchmarks/study.py, which reuses none of this file's settings.

``--dry-run`` prints the plan (commands) and exits. ``--aggregate-only`` starts no run and aggregates every run
directory in the study folder, finished or not (``finished`` and ``env_steps`` say how far each got).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, load_average  # noqa: E402

ENVS = {"hopper": "Hopper-v5", "humanoid": "Humanoid-v5", "ant": "Ant-v5", "invpend": "InvertedPendulum-v5"}
#: every method (experiment file suffix), in run order within a seed: a study cut short keeps FIRE and PBT
METHODS = ("fire", "pbt", "rs", "pb2", "asha", "asha_tpe")
#: the methods an env's study runs by default (the envs with experiments/<env>_<method>.py files for them)
DEFAULT_METHODS = {"invpend": METHODS}
#: config.json's method for a file suffix, where they differ
CONFIG_METHOD = {"asha_tpe": "asha+tpe"}
#: the "time to a target return" (--threshold) by default per env: InvertedPendulum's maximum return is 1000
DEFAULT_THRESHOLD = {"invpend": 900.0}


def ceil_to(x: float, unit: int) -> int:
    return int(math.ceil(x / unit - 1e-9) * unit)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The study's derived settings (paper ratios, rounded to rollouts)."""
    b, r = int(args.budget), int(args.rollout)
    ready = max(r, ceil_to(b / 100, r))
    eval_steps = ready if args.eval_steps is None else int(args.eval_steps)
    max_eval = 10 * ready  # the paper's 6e8 / 6e7; = budget / 10 when ready = budget / 100
    min_before = ceil_to(b / 6, r)
    asha = {"max_t": b, "grace_period": 3 * ready, "reduction_factor": 3}  # max_t = the whole budget per slot
    return {"env": ENVS[args.env], "budget_per_worker": b, "rollout_steps": r, "ready_steps": ready,
            "eval_steps": eval_steps, "max_eval_steps": max_eval, "min_steps_before_eval": min_before,
            "p_stat": args.p_stat, "members_rs_pbt": args.members,
            "fire_layout": {"subpops": 2, "subpop_size": args.subpop_size, "evaluators": args.evaluators},
            "asha": asha, "threshold": args.threshold,
            "workers": {"rs": args.members, "pbt": args.members, "pb2": args.members, "asha": args.members,
                        "asha_tpe": args.members, "fire": 2 * args.subpop_size + args.evaluators},
            "ratios_to_budget": {"ready": ready / b, "max_eval_steps": max_eval / b,
                                 "min_steps_before_eval": min_before / b},
            "paper_ratios": {"ready": 1 / 100, "max_eval_steps": 1 / 10, "min_steps_before_eval": 1 / 6}}


#: Hopper: the experiment files search epochs 3..15 (bounds 1..30) and minibatch 32..512; a batched update
#: of 16 members then costs ~1 CPU-s per member per 512-step rollout on this machine (minibatch groups run one
#: after the other), several times the env stepping. The study narrows both, for every method alike.
DEFAULT_SPACE_SETS = {"hopper": ["space.epochs.lo=3", "space.epochs.hi=6", "space.epochs.bounds=(1, 10)",
                                 "space.minibatch_size.values=(128, 256, 512)"]}


def overrides(method: str, seed: int, s: dict[str, Any], env_key: str) -> list[str]:
    sets = list(s.get("space_sets", []))
    sets += [f"seed={seed}", f"total_steps={s['budget_per_worker']}", f"eval_steps={s['eval_steps']}",
             "backend=inline"]
    if env_key in ("hopper", "invpend"):  # PPO: rollout length (V-MPO's rollout_steps is kept as its files set it)
        sets.append(f"agent.hparams.rollout_steps={s['rollout_steps']}")
    if method in ("rs", "pbt", "pb2", "asha", "asha_tpe"):
        sets.append(f"strategy.population={s['members_rs_pbt']}")
    if method in ("pbt", "pb2"):
        sets.append(f"strategy.ready_steps={s['ready_steps']}")
    if method in ("asha", "asha_tpe"):
        a = s["asha"]
        sets += [f"strategy.max_t={a['max_t']}", f"strategy.grace_period={a['grace_period']}",
                 f"strategy.reduction_factor={a['reduction_factor']}"]
    if method == "fire":
        f = s["fire_layout"]
        sets += [f"strategy.subpop_size={f['subpop_size']}", f"strategy.evaluators={f['evaluators']}",
                 f"strategy.ready_steps={s['ready_steps']}", f"strategy.max_eval_steps={s['max_eval_steps']}",
                 f"strategy.min_steps_before_eval=({s['min_steps_before_eval']},)", f"strategy.p_stat={s['p_stat']}"]
    out = []
    for x in sets:
        out += ["--set", x]
    return out


def method_key(cfg: dict[str, Any]) -> str:
    """The experiment-file suffix (METHODS) of a run's config.json method."""
    m = str(cfg.get("method"))
    return next((k for k, v in CONFIG_METHOD.items() if v == m), m)


def finished_runs(runs_dir: Path) -> dict[tuple[str, int], Path]:
    """(method, seed) -> finished run directory already in the study folder."""
    done = {}
    for d in sorted(runs_dir.glob("*")) if runs_dir.is_dir() else []:
        try:
            cfg = json.loads((d / "config.json").read_text())
            status = json.loads((d / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if status.get("finished"):
            done[(method_key(cfg), int(cfg.get("seed", -1)))] = d
    return done


def run_one(cmd: list[str], log: Path) -> tuple[int, Path | None, float]:
    t0 = time.time()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - t0
    m = re.search(r"run directory: (\S+)", log.read_text(errors="replace"))
    return proc.returncode, (Path(m.group(1)) if m else None), wall


def med_range(vals: list[float]) -> dict[str, Any]:
    vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", choices=sorted(ENVS), default="hopper")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only-methods", nargs="+", choices=METHODS, default=None,
                   help="default: fire pbt rs (invpend: all six)")
    p.add_argument("--threshold", type=float, default=None,
                   help="target return for 'actor steps to reach it' (default: 900 for invpend, else none)")
    p.add_argument("--budget", type=int, default=51_200, help="actor steps per worker")
    p.add_argument("--rollout", type=int, default=512, help="PPO rollout (env steps per update, all envs)")
    p.add_argument("--eval-steps", type=int, default=None, help="Q interval (default: the ready interval)")
    p.add_argument("--members", type=int, default=16, help="RS and PBT population")
    p.add_argument("--subpop-size", type=int, default=6)
    p.add_argument("--evaluators", type=int, default=4)
    p.add_argument("--p-stat", type=float, default=0.01)
    p.add_argument("--space-set", action="append", default=None, metavar="KEY=VALUE",
                   help="extra --set for every method (default for hopper: the cheaper PPO update space below)")
    p.add_argument("--study-dir", type=Path, default=None, help="default: /tmp/rlpop-study-<env>")
    p.add_argument("--figures", type=Path, default=None, help="copy the main figures here as <env>_*.png")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="start no run after this many minutes")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--note", default="", help="free text stored in the JSON (how the study was actually run)")
    p.add_argument("--aggregate-only", action="store_true",
                   help="start no run: summarise, plot and write the JSON for every run directory in STUDY/runs, "
                        "finished or not (runs started by hand, or cut short, are included and marked)")
    args = p.parse_args(argv)
    if args.only_methods is None:
        args.only_methods = list(DEFAULT_METHODS.get(args.env, ("fire", "pbt", "rs")))
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD.get(args.env)

    s = settings(args)
    s["space_sets"] = args.space_set if args.space_set is not None else DEFAULT_SPACE_SETS.get(args.env, [])
    if s["max_eval_steps"] // s["eval_steps"] + 1 < math.floor(math.log2(1 / args.p_stat)) + 1:
        p.error("max_eval_steps / eval_steps gives too few Q points for a success at p_stat; lower --eval-steps")
    study = args.study_dir or Path(f"/tmp/rlpop-study-{args.env}")
    runs_dir = study / "runs"
    logs = study / "logs"
    out = args.out or RESULTS_DIR / f"reproduce_{args.env}.json"
    plan = []
    for seed in args.seeds:
        for m in args.only_methods:
            exp = ROOT / "experiments" / f"{args.env}_{m}.py"
            cmd = [sys.executable, "-m", "rlpop.run", str(exp.relative_to(ROOT)), *overrides(m, seed, s, args.env),
                   "--runs-dir", str(runs_dir), "--quiet"]
            plan.append((m, seed, cmd))
    if args.dry_run:
        print(json.dumps(s, indent=2))
        for m, seed, cmd in plan:
            print(m, seed, shlex.join(["python", *cmd[1:]]))
        return 0

    report = Report(out, "reproduce_rl")  # the machine and the load at the start
    t_start = time.time()
    logs.mkdir(parents=True, exist_ok=True)
    done = finished_runs(runs_dir)
    records: list[dict[str, Any]] = []
    skipped = []
    if args.aggregate_only:
        plan_cmd = {(m, seed): shlex.join(["python", *cmd[1:]]) for m, seed, cmd in plan}
        for d in sorted(runs_dir.glob("*")) if runs_dir.is_dir() else []:
            try:
                cfg = json.loads((d / "config.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            key = (method_key(cfg), int(cfg.get("seed", -1)))
            records.append({"method": key[0], "seed": key[1], "run_dir": str(d), "command": plan_cmd.get(key, ""),
                            "aggregated": True})
        plan = []
    for m, seed, cmd in plan:
        shown = shlex.join(["python", *cmd[1:]])
        if (m, seed) in done:
            print(f"[{m} seed {seed}] already finished: {done[(m, seed)]}", flush=True)
            records.append({"method": m, "seed": seed, "run_dir": str(done[(m, seed)]), "command": shown,
                            "rc": 0, "reused": True})
            continue
        if args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes:
            skipped.append({"method": m, "seed": seed, "reason": f"--max-minutes {args.max_minutes} reached"})
            print(f"[{m} seed {seed}] skipped: --max-minutes reached", flush=True)
            continue
        load0 = load_average()
        print(f"[{m} seed {seed}] {shown}", flush=True)
        rc, run_dir, wall = run_one(cmd, logs / f"{m}_seed{seed}.log")
        print(f"[{m} seed {seed}] rc={rc} wall={wall:.0f}s dir={run_dir}", flush=True)
        records.append({"method": m, "seed": seed, "run_dir": str(run_dir) if run_dir else None, "command": shown,
                        "rc": rc, "process_wall_s": round(wall, 1), "load_average_before": load0,
                        "load_average_after": load_average()})

    from rlpop.summary import summarise

    ok_dirs = []
    for rec in records:
        if rec.get("run_dir") and Path(rec["run_dir"]).is_dir():
            try:
                row = summarise(rec["run_dir"], args.threshold)
            except Exception as exc:  # a run that wrote no Q row
                rec["summary_error"] = str(exc)
                continue
            rec.update({k: row[k] for k in ("best_final_q", "best_worker", "auc", "exploits", "successes",
                                            "wall_s", "env_steps", "env_steps_per_s", "finished")})
            if args.threshold is not None:  # actor steps per worker (ASHA: per slot, over its trials)
                rec["steps_to_target"] = row["steps_to_threshold"] if row["steps_to_threshold"] != "" else None
            from rlpop.lineage import read_curves, read_decisions
            from rlpop.summary import members, slot_steps, top_curve

            cur, dec = read_curves(rec["run_dir"]), read_decisions(rec["run_dir"])
            # < budget: the run was cut short (ASHA / HyperBand: a slot's steps over all its trials)
            rec["member_steps_reached"] = int(slot_steps(members(cur), dec).max())
            rec["trials_restarted"] = sum(1 for d in dec if d.get("kind") == "restart_trial")
            x, y = top_curve(cur, dec)
            rec["top_return_curve"] = [[int(a), round(float(b), 2)] for a, b in zip(x, y)]
            ok_dirs.append(rec["run_dir"])
    per_method = {}
    for m in args.only_methods:
        rs = [r for r in records if r["method"] == m and "best_final_q" in r]
        per_method[m] = {"best_final_q": med_range([r["best_final_q"] for r in rs]),
                         "auc": med_range([r["auc"] for r in rs]),
                         "successes": [r["successes"] for r in rs], "exploits": [r["exploits"] for r in rs],
                         "wall_s": med_range([r["wall_s"] for r in rs])}
        if args.threshold is not None:
            hit = [r["steps_to_target"] for r in rs if r.get("steps_to_target") is not None]
            # median over all runs, a run that never reached the target counting as "later than any" (None when
            # half or more never reached it)
            ordered = sorted(hit) + [math.inf] * (len(rs) - len(hit))
            med_all = statistics.median(ordered) if ordered else math.inf
            per_method[m]["steps_to_target"] = {
                "target": args.threshold, "runs_reaching": len(hit), "runs": len(rs),
                "reaching": med_range(hit), "median_all_runs": med_all if math.isfinite(med_all) else None}
        if m in ("asha", "asha_tpe"):
            per_method[m]["trials_restarted"] = [r.get("trials_restarted") for r in rs]

    figures = []
    if ok_dirs:
        thr = ["--threshold", str(args.threshold)] if args.threshold is not None else []
        subprocess.run([sys.executable, "-m", "rlpop.summary", *ok_dirs, *thr, "--out", str(study / "summary.csv")],
                       cwd=ROOT, check=False)
        fig_dir = study / "figures"
        pr = subprocess.run([sys.executable, "-m", "rlpop.plot", *ok_dirs, "--out", str(fig_dir),
                             "--format", "png"], cwd=ROOT, check=False, capture_output=True, text=True)
        print(pr.stdout[-2000:], pr.stderr[-2000:])
        if args.figures:
            args.figures.mkdir(parents=True, exist_ok=True)
            pairs = [(fig_dir / "top_return.png", f"{args.env}_top_return.png")]
            first = args.seeds[0]
            for rec in records:
                if rec["seed"] == first and rec["method"] in ("fire", "pbt") and rec.get("run_dir") \
                        and Path(rec["run_dir"]).is_dir():
                    name = Path(rec["run_dir"]).name
                    for kind in ("hparams", "population"):
                        dst = f"{args.env}_{rec['method']}_seed{first}_{kind}.png"
                        pairs.append((fig_dir / name / f"{kind}.png", dst))
            for src, dst in pairs:
                if src.is_file():
                    shutil.copy(src, args.figures / dst)
                    figures.append({"path": str((args.figures / dst).resolve().relative_to(ROOT))
                                    if (args.figures / dst).resolve().is_relative_to(ROOT) else str(args.figures / dst),
                                    "bytes": (args.figures / dst).stat().st_size})

    report.finish(
        what=f"{', '.join(args.only_methods)} at equal workers and equal actor-step budget per worker "
             "(Dalibard & Jaderberg 2020, section 4.2, scaled down)",
        settings=s, note=args.note, seeds=args.seeds, study_dir=str(study), runs=records, skipped=skipped,
        per_method=per_method, figures=figures, study_wall_s=round(time.time() - t_start, 1),
        load_average_at_end=load_average())
    print(json.dumps(per_method, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
