"""The study's results: one JSON record per run, the small files kept in git, and the three figures.

A run's record (:func:`run_record`) reads only its run directory -- :func:`rlpop.summary.summarise` for best final
Q, the top-return curve's mean height (``auc``), the actor steps to the frozen threshold and wall time;
decisions.jsonl for evaluator successes (``kind == "success"``) and stops (``kind == "stop"``, whose free-text
``reason`` :func:`stop_kind` files under a few fixed names, as rlpop/strategies/fire.py words them) -- plus the
sittings that ran it (load samples). :func:`keep_small_files` copies config.json, status.json, curves.csv,
decisions.jsonl of each run (config.json records the experiment file) into the results folder, so the figures can be redrawn from git
(:func:`figures` draws from those copies): the top return per method (rlpop.plot's Figure 5: median and band
over seeds), Figure 4a of one FIRE run (rlpop.plot.hparams_figure) and the evaluator stop reasons per run.
"""
from __future__ import annotations

import math
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

SMALL_FILES = ("config.json", "status.json", "curves.csv", "decisions.jsonl")  # experiment: experiments/study_*.py
#: rlpop/strategies/fire.py's stop reasons, as filed here (anything else: its words with numbers as #)
STOP_KINDS = ("success", "p above threshold", "no overlap after max_eval_steps", "parent lost evolution",
              "child lost evolution", "parent took new weights", "parent gone", "child gone")


def stop_kind(reason: str) -> str:
    r = str(reason).strip().lower()
    if r == "success":
        return "success"
    if r.startswith("p=") and "threshold" in r:
        return "p above threshold"
    if r.startswith("no overlap"):
        return "no overlap after max_eval_steps"
    if r.startswith("parent took new weights"):
        return "parent took new weights"
    if r in STOP_KINDS:
        return r
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", r)


def evaluator_stops(decisions: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(stop_kind(d.get("reason", "")) for d in decisions if d.get("kind") == "stop"))


def evaluator_lifetimes(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """How many actor steps FIRE's evaluators trained on one assignment before they stopped (an evaluator's
    ``step`` at its stop minus its ``step`` at the assignment before): count, median and max, overall and per stop
    kind."""
    by_kind: dict[str, list[int]] = {}
    assigned: dict[int, int] = {}
    for d in decisions:
        if d.get("kind") == "assign" and d.get("step") is not None:
            assigned[int(d["evaluator"])] = int(d["step"])
        elif d.get("kind") in ("stop", "success") and int(d.get("evaluator", -1)) in assigned:
            kind = "success" if d["kind"] == "success" else stop_kind(d.get("reason", ""))
            if d["kind"] == "stop" and kind == "success":
                continue  # a success is recorded once, as its own decision
            by_kind.setdefault(kind, []).append(int(d["step"]) - assigned[int(d["evaluator"])])
    allv = [v for vs in by_kind.values() for v in vs]

    def summary(vs: list[int]) -> dict[str, Any]:
        return {"n": len(vs), "median": statistics.median(vs), "max": max(vs)} if vs else {"n": 0}

    return {"all": summary(allv), **{k: summary(v) for k, v in sorted(by_kind.items())}}


def workers_of(cfg: dict[str, Any]) -> int:
    st = cfg.get("strategy") or {}
    if "subpop_size" in st:
        return int(st.get("subpops", 2)) * int(st["subpop_size"]) + int(st.get("evaluators", 0))
    return int(st.get("population", 0))


def load_summary(sittings: list[dict[str, Any]]) -> dict[str, Any]:
    """The machine's 1-minute load average while the run went, over all its sittings."""
    samples = [x for s in sittings for x in s.get("load1_samples", [])]
    if not samples:
        return {"sittings": len(sittings), "samples": 0}
    return {"sittings": len(sittings), "samples": len(samples), "mean_load1": round(statistics.mean(samples), 2),
            "max_load1": max(samples)}


def run_record(run_dir: Path, method: str, seed: int, threshold: float | None,
               sittings: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """The JSON record of one run (see the module docstring)."""
    from rlpop.runs import load_run
    from rlpop.summary import members, summarise, top_curve

    run = load_run(run_dir)
    row = summarise(run_dir, threshold)
    cfg, curves, dec = run.config, run.curves, run.decision_records
    x, y = top_curve(curves, dec)
    stt = row.get("steps_to_threshold", "")
    return {
        "method": method, "seed": seed, "workers": workers_of(cfg), "steps_per_worker": int(cfg["total_steps"]),
        "best_final_q": _num(row["best_final_q"]), "auc": _num(row["auc"]),
        "steps_to_threshold": stt if isinstance(stt, int) else None, "threshold": threshold,
        "successes": int(row["successes"]), "evaluator_stops": evaluator_stops(dec),
        "evaluator_steps_before_stop": evaluator_lifetimes(dec), "exploits": int(row["exploits"]),
        "wall_s": _num(row["wall_s"]), "process_wall_s": round(sum(s.get("wall_s", 0) for s in sittings), 1),
        "load": load_summary(list(sittings)), "finished": bool(row["finished"]),
        "member_steps_reached": int(members(curves)["step"].max()) if len(members(curves)) else 0,
        "env_steps": int(row["env_steps"]), "run_dir": str(run_dir),
        "top_return_curve": [[int(a), round(float(b), 2)] for a, b in zip(x, y)],
    }


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else round(f, 3)


def keep_small_files(run_dir: Path, dest: Path) -> Path:
    """Copy the files a figure needs from ``run_dir`` into ``dest`` (replacing an older copy)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (Path(run_dir) / name).is_file():
            shutil.copy(Path(run_dir) / name, dest / name)
    return dest


def per_method(records: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    def mr(vals):
        vals = [v for v in vals if isinstance(v, (int, float))]
        return {"n": len(vals), **({"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
                                   if vals else {})}

    out = {}
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        out[m] = {"runs": len(rs), "finished": sum(r["finished"] for r in rs),
                  "best_final_q": mr([r["best_final_q"] for r in rs]), "auc": mr([r["auc"] for r in rs]),
                  "steps_to_threshold": [r["steps_to_threshold"] for r in rs],
                  "successes": [r["successes"] for r in rs],
                  "evaluator_stops": dict(sum((Counter(r["evaluator_stops"]) for r in rs), Counter()))}
    return out


def figures(kept: list[tuple[str, int, Path]], out: Path, prefix: str) -> list[Path]:
    """Figure 5 (all runs), Figure 4a (the FIRE run of the lowest seed), evaluator stops per run, into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    from rlpop.plot import Run, hparams_figure, top_return_figure
    from rlpop.store import RunDirError

    out.mkdir(parents=True, exist_ok=True)
    runs = [(m, s, Run(d)) for m, s, d in kept]
    written = [top_return_figure([r for _, _, r in runs], out / f"{prefix}_top_return.png")]
    fire = sorted((s, r) for m, s, r in runs if m == "fire")
    if fire:
        seed, r = fire[0]
        try:
            lineage = r.run.lineage()
        except RunDirError:
            lineage = None
        written.append(hparams_figure(r, out / f"{prefix}_fire_seed{seed}_hparams.png", lineage))
    written.append(stops_figure(runs, out / f"{prefix}_evaluator_stops.png"))
    return written


def stops_figure(runs, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import pandas as pd

    rows = {f"{m} s{s}": evaluator_stops(r.decisions) for m, s, r in sorted(runs, key=lambda t: (t[0], t[1]))}
    df = pd.DataFrame.from_dict(rows, orient="index").fillna(0)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(rows) + 3), 4))
    if df.empty or df.to_numpy().sum() == 0:
        ax.text(0.5, 0.5, "no evaluator stopped (only FIRE has evaluators)", ha="center", va="center",
                transform=ax.transAxes)
    else:
        order = [k for k in STOP_KINDS if k in df.columns] + [c for c in df.columns if c not in STOP_KINDS]
        df[order].plot.bar(stacked=True, ax=ax, rot=0, width=0.7)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylabel("evaluator stops")
    ax.set_title("Evaluator stop reasons per run (decisions.jsonl)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
