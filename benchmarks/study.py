"""Issue 26's study: RS vs PBT vs FIRE PBT on one MuJoCo env, pilot first, settings frozen, run across sittings.

    python benchmarks/study.py pilot  [--envs Hopper-v5 Walker2d-v5 HalfCheetah-v5] [--learners ppo [vmpo]]
                                      [--pilot-workers 8] [--pilot-steps 100000] [--max-minutes M] [--dry-run]
    python benchmarks/study.py freeze --env ENV [--learner ppo] [--workers 22] [--steps-per-worker 500000]
                                      [--seeds 0 1 2] [--threshold Q] [--note TEXT] [--dry-run]
    python benchmarks/study.py run    --env ENV [--seeds ...] [--methods fire pbt rs] [--max-minutes M]
                                      [--dry-run] [--no-aggregate]
    python benchmarks/study.py aggregate --env ENV
    python benchmarks/study.py followup --env ENV --method fire --seed 0 --name NAME --set KEY=VALUE [...]
    (all: [--results-dir benchmarks/results] [--runs-root runs])

A new runner beside benchmarks/reproduce_rl.py (which stays the scaled-down study of the README's measured
tables): that one derives its settings on every call; this one fixes them once, before the first comparison run.

1. ``pilot``: one random-search probe per candidate env and learner (:mod:`study_pilot`), recorded in
   ``<results>/study_pilot.json`` (probe runs: ``<runs-root>/study_pilot/``). ``--dry-run`` prints the probes'
   commands and rlpop's own estimate of each (a short measured burst: ``rlpop run ... --dry-run``).
2. ``freeze``: derives the study's settings from the budget (:func:`study_settings.derive`: ready = budget/100,
   max_eval_steps = budget/10, P2's min_steps_before_eval = budget/6, each rounded up to whole rollouts; FIRE's
   2 sub-populations with evaluators as near 3/4 of a sub-population as the workers allow; the same space,
   initial distributions and within-sub-population PBT settings for PBT and FIRE: the study experiment files')
   and writes them into ``<results>/study_<env>.json`` with every method's resolved experiment and the
   experiment files' hashes. It needs the chosen env's pilot probe (the threshold for "actor steps to reach it"
   defaults to the probe's final top return, rounded down to 2 significant digits), and refuses when the file
   exists or a comparison run of that env has started. ``--dry-run`` prints the settings and estimated times.
3. ``run``: refuses without frozen settings, or when an experiment file or a resolved experiment differs from
   the frozen one; runs seed by seed (FIRE, PBT, RS), each through ``rlpop run`` in its own folder
   ``<runs-root>/study_<env>/<method>_seed<k>/`` -- a finished run is skipped, an unfinished one continued with
   ``rlpop run --resume``, no run starts after ``--max-minutes``, Ctrl-C ends the sitting (the run resumes next
   time) -- then aggregates. ``--dry-run`` prints each run's state and command and the estimated hours.
4. ``aggregate`` (also after every sitting): ``<results>/study_<env>.json`` gets ``runs`` (one record per run
   directory found, finished or not: :func:`study_results.run_record`) and ``per_method``; each run's small
   files are copied to ``<results>/study_<env>/<method>_seed<k>/`` and the figures drawn from those copies into
   ``<results>/study_<env>/figures/``. ``settings`` is never rewritten.
5. ``followup``: one run of a frozen method and seed with extra ``--set`` overrides (a question the comparison
   raised), in ``<runs-root>/study_<env>_followups/<name>/``, recorded in ``<results>/study_<env>_followups.json``;
   never part of the comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_pilot  # noqa: E402
import study_results  # noqa: E402
import study_runs  # noqa: E402
import study_settings as ss  # noqa: E402
from _common import RESULTS_DIR, load_average, machine_info  # noqa: E402

ROOT = ss.ROOT


def _paths(args) -> tuple[Path, Path]:
    return Path(args.results_dir), Path(args.runs_root)


# --------------------------------------------------------------------------- pilot
def cmd_pilot(args) -> int:
    results, runs_root = _paths(args)
    out = results / "study_pilot.json"
    root = runs_root / "study_pilot"
    probes = []  # (env, learner, settings, name): the probe's run lives in <root>/<name>_seed0/
    for env in args.envs:
        for learner in args.learners:
            s = study_pilot.probe_settings(env, learner, args.pilot_workers, args.pilot_steps, args.rollout)
            probes.append((env, learner, s, f"{ss.env_key(env)}_{learner}"))
    plan = [(name, 0, lambda folder, s=s: study_pilot.probe_command(s, args.pilot_workers, folder))
            for _, _, s, name in probes]
    if args.dry_run:
        total = 0.0
        for (env, learner, s, name), (_, _, make) in zip(probes, plan):
            folder = study_runs.run_folder(root, name, 0)
            state, run_dir = study_runs.run_state(folder)
            cmd = make(folder)
            rate, text = study_pilot.measured_rate(cmd)
            h = args.pilot_workers * s["steps_per_worker"] / rate / 3600 if rate else None
            total += h or 0
            print(f"{env}/{learner} [{state}]: {study_runs.shown(cmd)}\n  {text}" + (f"\n  -> ~{h:.2f} h" if h else ""))
        print(f"pilot: {len(probes)} probes, ~{total:.2f} h in all at those rates (rlpop's estimate errs long)")
        return 0
    study_runs.sitting(root, plan, args.max_minutes)
    sittings = study_runs.read_sittings(root)
    for env, learner, s, name in probes:
        state, run_dir = study_runs.run_state(study_runs.run_folder(root, name, 0))
        if run_dir is None:
            continue
        try:
            rec = study_pilot.probe_record(run_dir, env, learner, [x for x in sittings if x["method"] == name])
        except Exception as exc:  # noqa: BLE001 -- a probe with no Q row yet
            print(f"{env}/{learner}: not recorded: {exc}")
            continue
        study_pilot.write_probe(out, rec, s)
        print(f"{env}/{learner}: {state}, best final Q {rec['best_final_q']}, members' final Q median "
              f"{rec['final_q_median']} (spread {rec['final_q_spread']}), {rec['env_steps_per_s']} steps/s")
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- freeze
def _estimate(s: dict, probe: dict | None, runs_root: Path, methods, seeds) -> None:
    rate = None
    for m in methods:  # one measured burst: every method trains the same learner on the same env
        cmd = study_runs.new_command(ss.experiment_file(s["learner"], m).relative_to(ROOT),
                                     ss.overrides(s, m, seeds[0]), runs_root / "dry-run")
        rate, text = study_pilot.measured_rate(cmd)
        print(f"rlpop run --dry-run ({m}): {text}")
        break
    w, b = s["workers"], s["steps_per_worker"]
    per_run = w * b / rate / 3600 if rate else None
    from_pilot = study_pilot.pilot_hours(probe, w, b)
    n = len(methods) * len(seeds)
    print(f"one run: {w} workers x {b:,} actor steps = {w * b:,} worker-steps")
    if per_run:
        print(f"  rlpop's burst estimate: ~{per_run:.2f} h per run, ~{n * per_run:.2f} h for {n} runs "
              "(FIRE's evaluators idle part of the time: somewhat less)")
    if from_pilot:
        print(f"  at the pilot's measured rate ({probe['env_steps_per_s']:,.0f} steps/s with "
              f"{probe['workers']} members): ~{from_pilot:.2f} h per run, ~{n * from_pilot:.2f} h for {n} runs")


def cmd_freeze(args) -> int:
    results, runs_root = _paths(args)
    pilot = study_pilot.read_pilot(results / "study_pilot.json")["probes"]
    probe = pilot.get(study_pilot.probe_key(args.env, args.learner))
    if probe is None and not args.dry_run:
        raise ValueError(f"--env {args.env} --learner {args.learner}: no pilot probe in "
                         f"{results / 'study_pilot.json'}; run `python benchmarks/study.py pilot --envs {args.env} "
                         f"--learners {args.learner}` first (the pilot comes before the settings)")
    threshold = args.threshold
    if threshold is None and probe and probe.get("top_return_curve"):
        threshold = round_down_2sig(probe["top_return_curve"][-1][1])
    s = ss.derive(args.env, args.learner, args.workers, args.steps_per_worker, args.rollout, args.p_stat, threshold)
    s["seeds"] = list(args.seeds)
    s["threshold_rule"] = "--threshold" if args.threshold is not None else \
        "the pilot probe's final top return, rounded down to 2 significant digits"
    if args.dry_run:
        print(json.dumps(s, indent=2))
        _estimate(s, probe, runs_root, ss.METHODS, args.seeds)
        return 0
    study = runs_root / f"study_{s['env_key']}"
    started = [d for m in ss.METHODS for k in args.seeds
               for d in study_runs.run_dirs(study_runs.run_folder(study, m, k))]
    if started:
        raise ValueError(f"{study}: comparison runs exist already ({started[0].name}, ...); settings are frozen "
                         "before the first comparison run, never after")
    path = ss.frozen_path(results, args.env)
    doc = ss.freeze(s, path, ss.METHODS, note=args.note,
                    pilot={"probe": study_pilot.probe_key(args.env, args.learner),
                           "probes_seen": sorted(pilot), "file": str(results / "study_pilot.json")})
    print(json.dumps(doc["settings"]["fire"]), f"threshold={threshold}")
    print(f"froze the settings in {path}")
    return 0


def round_down_2sig(x: float) -> float:
    import math

    if not x or not math.isfinite(x):
        return float(x)
    e = 10 ** (math.floor(math.log10(abs(x))) - 1)
    return float(math.floor(x / e) * e)


# --------------------------------------------------------------------------- run + aggregate
def _study(args) -> tuple[dict, Path, Path]:
    results, runs_root = _paths(args)
    path = ss.frozen_path(results, args.env)
    doc = ss.load_frozen(path)
    return doc, path, runs_root / f"study_{doc['settings']['env_key']}"


def _plan(doc, args):
    s = doc["settings"]
    seeds = args.seeds if args.seeds is not None else s["seeds"]
    methods = args.methods if args.methods is not None else s["methods"]
    off = [k for k in seeds if k not in s["seeds"]]
    if off:
        raise ValueError(f"--seeds {' '.join(map(str, off))}: not frozen in this study; give some of "
                         f"{' '.join(map(str, s['seeds']))}")
    bad = [m for m in methods if m not in s["methods"]]
    if bad:
        raise ValueError(f"--methods {' '.join(bad)}: not frozen in this study; give some of {' '.join(s['methods'])}")
    exp = {m: ss.experiment_file(s["learner"], m).relative_to(ROOT) for m in methods}
    return [(m, k, lambda folder, m=m, k=k: study_runs.new_command(exp[m], ss.overrides(s, m, k), folder))
            for k in seeds for m in methods]


def cmd_run(args) -> int:
    doc, path, study = _study(args)
    s = doc["settings"]
    ss.check_unchanged(s)
    plan = _plan(doc, args)
    if args.dry_run:
        print(f"frozen {doc['frozen_at']} in {path}: {s['env']}, {s['learner']}, {s['workers']} workers x "
              f"{s['steps_per_worker']:,} steps; FIRE {s['fire']}")
        for m, k, make in plan:
            folder = study_runs.run_folder(study, m, k)
            state, run_dir = study_runs.run_state(folder)
            cmd = study_runs.resume_command(run_dir) if state == "unfinished" else make(folder)
            print(f"[{m} seed {k}] {state}" + ("" if state == "finished" else f": {study_runs.shown(cmd)}"))
        probe = study_pilot.read_pilot(Path(args.results_dir) / "study_pilot.json")["probes"].get(
            study_pilot.probe_key(s["env"], s["learner"]))
        left = [(m, k) for m, k, _ in plan if study_runs.run_state(study_runs.run_folder(study, m, k))[0] != "finished"]
        if left:
            _estimate(s, probe, Path(args.runs_root), sorted({m for m, _ in left}), sorted({k for _, k in left}))
        print(f"{len(left)} of {len(plan)} runs not finished")
        return 0
    study_runs.sitting(study, plan, args.max_minutes)
    if not args.no_aggregate:
        aggregate(doc, path, study)
    return 0


def aggregate(doc: dict, path: Path, study: Path) -> None:
    s = doc["settings"]
    sittings = study_runs.read_sittings(study)
    records, kept = [], []
    keep_root = path.with_suffix("")  # <results>/study_<env>/
    for k in s["seeds"]:
        for m in s["methods"]:
            state, run_dir = study_runs.run_state(study_runs.run_folder(study, m, k))
            if run_dir is None:
                continue
            mine = [x for x in sittings if x["method"] == m and x["seed"] == k]
            try:
                rec = study_results.run_record(run_dir, m, k, s.get("threshold"), mine)
            except Exception as exc:  # noqa: BLE001 -- a run with no Q row yet
                print(f"[{m} seed {k}] not aggregated: {exc}")
                continue
            dest = study_results.keep_small_files(run_dir, keep_root / f"{m}_seed{k}")
            rec["kept"] = study_runs.rel(dest)
            records.append(rec)
            kept.append((m, k, dest))
    if (study / "sittings.jsonl").is_file():  # every sitting's runs, exit codes, wall times and load samples
        keep_root.mkdir(parents=True, exist_ok=True)
        (keep_root / "sittings.jsonl").write_text((study / "sittings.jsonl").read_text())
    figs = study_results.figures(kept, keep_root / "figures", f"study_{s['env_key']}") if kept else []
    doc = json.loads(path.read_text())  # settings as frozen: only runs, per_method, figures change
    doc.update(runs=records, per_method=study_results.per_method(records, s["methods"]),
               figures=[study_runs.rel(f) for f in figs],
               aggregated_at=time.strftime("%Y-%m-%d %H:%M:%S"), machine=machine_info(),
               load_average_at_aggregate=load_average())
    path.write_text(json.dumps(doc, indent=2) + "\n")
    for r in records:
        print(f"[{r['method']} seed {r['seed']}] finished={r['finished']} best_final_q={r['best_final_q']} "
              f"auc={r['auc']} steps_to_threshold={r['steps_to_threshold']} successes={r['successes']} "
              f"stops={r['evaluator_stops']}")
    print(f"wrote {path}" + (f" and {len(figs)} figures in {keep_root / 'figures'}" if figs else ""))


def cmd_aggregate(args) -> int:
    doc, path, study = _study(args)
    aggregate(doc, path, study)
    return 0


# --------------------------------------------------------------------------- follow-ups
def cmd_followup(args) -> int:
    """One run of a frozen method and seed with extra ``--set`` overrides, outside the comparison: recorded in
    ``<results>/study_<env>_followups.json`` under ``--name`` (the frozen study's JSON is not touched)."""
    doc, path, study = _study(args)
    s = doc["settings"]
    ss.check_unchanged(s)
    if args.method not in s["methods"] or args.seed not in s["seeds"]:
        raise ValueError(f"--method {args.method} --seed {args.seed}: give a frozen method ({' '.join(s['methods'])}) "
                         f"and seed ({' '.join(map(str, s['seeds']))})")
    if not args.name.replace("_", "").isalnum():
        raise ValueError(f"--name {args.name!r}: letters, digits and _ only (it names a folder)")
    sets = [x for kv in args.set for x in ("--set", kv)]
    exp = ss.experiment_file(s["learner"], args.method).relative_to(ROOT)
    root = Path(args.runs_root) / f"study_{s['env_key']}_followups" / args.name
    study_runs.sitting(root, [(args.method, args.seed, lambda folder: study_runs.new_command(
        exp, ss.overrides(s, args.method, args.seed) + sets, folder))])
    state, run_dir = study_runs.run_state(study_runs.run_folder(root, args.method, args.seed))
    if run_dir is None:
        raise ValueError(f"no run directory under {root}")
    mine = [x for x in study_runs.read_sittings(root) if x["method"] == args.method and x["seed"] == args.seed]
    rec = {"name": args.name, "sets": args.set, **study_results.run_record(run_dir, args.method, args.seed,
                                                                           s.get("threshold"), mine)}
    rec["kept"] = study_runs.rel(study_results.keep_small_files(run_dir, path.with_suffix("") / "followups" /
                                                      f"{args.name}_{args.method}_seed{args.seed}"))
    out = path.with_name(f"{path.stem}_followups.json")
    runs = json.loads(out.read_text())["runs"] if out.is_file() else []
    runs = [r for r in runs if (r["name"], r["method"], r["seed"]) != (args.name, args.method, args.seed)] + [rec]
    out.write_text(json.dumps({"note": "runs outside the frozen comparison: a frozen method and seed with the "
                                       "overrides in `sets`", "machine": machine_info(), "runs": runs}, indent=2) + "\n")
    print(f"[{args.name}: {args.method} seed {args.seed}] finished={rec['finished']} best_final_q={rec['best_final_q']} "
          f"successes={rec['successes']} stops={rec['evaluator_stops']} "
          f"steps before stop={rec['evaluator_steps_before_stop']['all']}")
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results-dir", default=str(RESULTS_DIR), help="default: benchmarks/results")
    common.add_argument("--runs-root", default=str(ROOT / "runs"), help="run directories (git-ignored runs/)")
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("pilot", parents=[common], help="short RS probes of candidate envs and learners")
    pi.add_argument("--envs", nargs="+", default=list(study_pilot.CANDIDATES))
    pi.add_argument("--learners", nargs="+", choices=ss.LEARNERS, default=["ppo"])
    pi.add_argument("--pilot-workers", type=int, default=8)
    pi.add_argument("--pilot-steps", type=int, default=100_000, help="actor steps per member")
    pi.add_argument("--rollout", type=int, default=None, help="env steps per update (default: the learner's)")
    pi.add_argument("--max-minutes", type=float, default=None, help="start no probe after this many minutes")
    pi.add_argument("--dry-run", action="store_true")
    fr = sub.add_parser("freeze", parents=[common], help="write the study's settings, once")
    fr.add_argument("--env", required=True)
    fr.add_argument("--learner", choices=ss.LEARNERS, default="ppo")
    fr.add_argument("--workers", type=int, default=22, help="per run (FIRE: 2 x subpop + evaluators)")
    fr.add_argument("--steps-per-worker", type=int, default=500_000)
    fr.add_argument("--rollout", type=int, default=None)
    fr.add_argument("--p-stat", type=float, default=0.01)
    fr.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    fr.add_argument("--threshold", type=float, default=None, help="target return (default: from the pilot)")
    fr.add_argument("--note", default="", help="why this env and learner (stored in the JSON)")
    fr.add_argument("--dry-run", action="store_true")
    for name, hlp in (("run", "run (or resume) the comparison runs, then aggregate"),
                      ("aggregate", "records and figures from the runs so far")):
        r = sub.add_parser(name, parents=[common], help=hlp)
        r.add_argument("--env", required=True)
        if name == "run":
            r.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the frozen seeds")
            r.add_argument("--methods", nargs="+", default=None, help="default: the frozen methods")
            r.add_argument("--max-minutes", type=float, default=None, help="start no run after this many minutes")
            r.add_argument("--dry-run", action="store_true")
            r.add_argument("--no-aggregate", action="store_true")
    fu = sub.add_parser("followup", parents=[common], help="one run outside the comparison, with --set overrides")
    fu.add_argument("--env", required=True)
    fu.add_argument("--method", required=True)
    fu.add_argument("--seed", type=int, required=True)
    fu.add_argument("--name", required=True, help="what the overrides test (names the folder and the record)")
    fu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an rlpop run --set, repeatable")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "env", None):
            ss.env_key(args.env)
        return {"pilot": cmd_pilot, "freeze": cmd_freeze, "run": cmd_run, "aggregate": cmd_aggregate,
                "followup": cmd_followup}[args.cmd](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
