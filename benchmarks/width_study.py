"""Issue 29's study: PBT with the layer widths searched vs fixed (64 and 256 units), at equal actor steps.

    python benchmarks/width_study.py run [--seeds 0 1 2] [--configs fixed64 fixed256 searched] [--max-minutes M]
    python benchmarks/width_study.py aggregate
    (both: [--results-dir benchmarks/results] [--runs-root runs])

The runs are experiments/width_pbt_<config>.py (what they share: experiments/width_space.py). ``run`` goes seed
by seed, the three configs interleaved within a seed (so each config's wall time is measured beside the others on
the same machine state), each through ``rlpop run`` in ``<runs-root>/width_halfcheetah/<config>_seed<k>/``;
finished runs are skipped, killed ones resumed (benchmarks/study_runs.py, as issue 26's study), the machine's
load sampled while each runs. ``aggregate`` (also after ``run``) writes ``<results>/width_halfcheetah.json``:
one record per run (best final Q, the top-return curve and its mean height ``auc``, wall time, actor steps per
second, load; for ``searched`` the best final member's widths and the population's widths at the end) and, per
config, the median and range over seeds; it keeps each run's small files in ``<results>/width_halfcheetah/`` and
draws the top return per config (median and range over seeds) and the width schedules of the first searched run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_results  # noqa: E402
import study_runs  # noqa: E402
from _common import RESULTS_DIR, load_average, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("fixed64", "fixed256", "searched")
NAME = "width_halfcheetah"


def _experiment_file(config: str) -> Path:
    return ROOT / "experiments" / f"width_pbt_{config}.py"


def cmd_run(args) -> int:
    study = Path(args.runs_root) / NAME
    plan = [(c, k, (lambda folder, c=c, k=k: study_runs.new_command(_experiment_file(c), ["--set", f"seed={k}"],
                                                                    folder)))
            for k in args.seeds for c in args.configs]
    study_runs.sitting(study, plan, args.max_minutes)
    return cmd_aggregate(args)


def _widths_at_end(run_dir: Path) -> dict:
    """The best final member's widths and every member's widths at its last row (searched runs)."""
    from rlpop.runs import load_run
    from rlpop.summary import members

    m = members(load_run(run_dir).curves)
    last = m.sort_values(["worker", "step"]).groupby("worker").tail(1)
    if "hp_width_0" not in last.columns:
        return {}
    best = last.loc[last["q"].idxmax()]
    return {"best_member_widths": [int(best["hp_width_0"]), int(best["hp_width_1"])],
            "final_widths": sorted([int(a), int(b)] for a, b in zip(last["hp_width_0"], last["hp_width_1"]))}


def _stats(vals: list) -> dict:
    vals = [v for v in vals if isinstance(v, (int, float))]
    return {"n": len(vals), **({"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else {})}


def cmd_aggregate(args) -> int:
    study = Path(args.runs_root) / NAME
    out = Path(args.results_dir) / f"{NAME}.json"
    keep_root = out.with_suffix("")
    sittings = study_runs.read_sittings(study)
    records = []
    for k in args.seeds:
        for c in args.configs:
            state, run_dir = study_runs.run_state(study_runs.run_folder(study, c, k))
            if run_dir is None:
                continue
            mine = [x for x in sittings if x["method"] == c and x["seed"] == k]
            try:
                rec = study_results.run_record(run_dir, c, k, None, mine)
            except Exception as exc:  # noqa: BLE001 -- a run with no Q row yet
                print(f"[{c} seed {k}] not aggregated: {exc}")
                continue
            rec = {"config": c, **{key: v for key, v in rec.items() if key not in (
                "method", "threshold", "steps_to_threshold", "successes", "evaluator_stops")}}
            rec["steps_per_s"] = round(rec["env_steps"] / rec["wall_s"], 1) if rec.get("wall_s") else None
            rec.update(_widths_at_end(run_dir))
            rec["kept"] = study_runs.rel(study_results.keep_small_files(run_dir, keep_root / f"{c}_seed{k}"))
            records.append(rec)
    per_config = {c: {"runs": sum(r["config"] == c for r in records),
                      **{f: _stats([r[f] for r in records if r["config"] == c])
                         for f in ("best_final_q", "auc", "wall_s", "steps_per_s")}} for c in args.configs}
    figs = _figures(records, keep_root / "figures") if records else []
    doc = {"study": "issue 29: PBT over PPO with layer widths searched vs fixed",
           "env": "HalfCheetah-v5", "experiments": {c: f"experiments/width_pbt_{c}.py" for c in args.configs},
           "shared": "experiments/width_space.py", "runs": records, "per_config": per_config,
           "figures": [study_runs.rel(f) for f in figs],
           "aggregated_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
           "load_average_at_aggregate": load_average()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    for r in records:
        print(f"[{r['config']} seed {r['seed']}] finished={r['finished']} best_final_q={r['best_final_q']} "
              f"auc={r['auc']} wall_s={r['wall_s']} steps/s={r['steps_per_s']} load={r['load']}"
              + (f" best widths={r['best_member_widths']}" if "best_member_widths" in r else ""))
    print(f"wrote {out}")
    return 0


def _figures(records: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in CONFIGS:
        curves = [r["top_return_curve"] for r in records if r["config"] == c and r["top_return_curve"]]
        if not curves:
            continue
        grid = np.unique(np.concatenate([[s for s, _ in cur] for cur in curves]))
        ys = np.array([np.interp(grid, [s for s, _ in cur], [q for _, q in cur], left=np.nan) for cur in curves])
        ax.plot(grid, np.nanmedian(ys, 0), label=f"{c} (median of {len(curves)})")
        ax.fill_between(grid, np.nanmin(ys, 0), np.nanmax(ys, 0), alpha=0.2)
    ax.set_xlabel("actor steps per member")
    ax.set_ylabel("top return (best Q so far)")
    ax.set_title("PBT on HalfCheetah-v5, 8 members: layer widths fixed or searched")
    ax.legend()
    fig.tight_layout()
    paths = [out / "width_top_return.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    searched = sorted((r["seed"], r["kept"]) for r in records if r["config"] == "searched")
    if searched:
        from rlpop.plot import Run, hparams_figure

        seed, kept = searched[0]
        run = Run(ROOT / kept)  # a relative record is inside the repository; an absolute one stays as it is
        paths.append(hparams_figure(run, out / f"width_searched_seed{seed}_hparams.png"))
    return paths


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results-dir", default=str(RESULTS_DIR))
    common.add_argument("--runs-root", default=str(ROOT / "runs"), help="run directories (git-ignored runs/)")
    common.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    common.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", parents=[common], help="run (or resume) the runs, then aggregate")
    r.add_argument("--max-minutes", type=float, default=None, help="start no run after this many minutes")
    sub.add_parser("aggregate", parents=[common], help="records and figures from the runs so far")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return {"run": cmd_run, "aggregate": cmd_aggregate}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
