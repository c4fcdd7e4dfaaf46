"""``rlpop plot RUN_DIR [RUN_DIR ...] [--out DIR] [--format png|svg|pdf]`` -- the paper's figures.

Reads only run directories (a run in progress too: a cut last line of curves.csv is left out). Writes, with
matplotlib's Agg backend, into RUN_DIR/plots (one run) or ``--out`` (needed for several runs; each run's own
figures then go to OUT/<run name>/):

``top_return`` -- the paper's Figure 5. Per run, the top-return curve :func:`rlpop.summary.top_curve`: at each
    actor step ``s``, the highest Q (the mean return of the episodes that finished in an evaluation interval;
    :class:`rlpop.worker.QTracker`) that any member scored at its own actor step <= ``s``. Members of every
    sub-population count (for FIRE: P1..Pn); evaluators do not. x = actor steps per worker (each worker's own
    step counter; for ASHA / HyperBand, whose slots restart trials from step 0, the slot's steps over all its
    trials: :func:`rlpop.summary.slot_steps`). Runs are grouped by config.json's ``method``
    (:data:`rlpop.summary.KNOWN_METHODS`; anything else is "other"); per group: the median over its runs (seeds)
    as a line, and a band that is min-max over the runs when a group has fewer than 5, else the
    inter-quartile range (the legend says which and how many runs). A run contributes only up to the last step
    it reached.
``hparams`` -- the paper's Figure 4a. One panel per searched hyperparameter (the space's names, ``hp_<name>``
    columns; Fixed ones left out): every member's value over its actor steps (thin, one colour per
    sub-population; a value applies to the steps trained up to the Q row that records it), the schedule of the
    best final member through its lineage (:func:`rlpop.lineage.trace_schedule`; x = steps its weights were
    trained for) drawn bold in black, evaluator successes as black circles (at the child's step and its kept
    value) and exploit-and-explore steps as triangles in the member's colour (at its step, the value it takes).
    The y axis is logarithmic for a LogUniform parameter (config.json's space repr), else when all values are
    positive and span a factor of 20 or more.
``population`` -- every member's Q over its actor steps (a slot's steps over its trials, as above), one colour
    per sub-population, exploits (x: the replaced member's Q before the copy) and evaluator successes (black circles: the child's Q before the copy),
    and the top-return curve dashed.

A directory that is not a run (or holds no Q row yet) gives one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from rlpop.store import RunDirError

FIGURES = ("top_return", "hparams", "population")
_MARK_SUCCESS = dict(marker="o", s=70, facecolors="none", edgecolors="black", linewidths=1.6, zorder=5)


class Run:
    """One run directory, read once through :func:`rlpop.load_run` (``.run``)."""

    def __init__(self, path: str | Path):
        from rlpop.runs import load_run

        self.run = load_run(path)
        self.rd = self.run.rd
        self.cfg = self.run.config
        self.path = self.run.path
        self.curves = self.run.curves
        self.decisions = self.run.decision_records
        self.method = self.run.method
        self.name = self.run.name

    def searched(self) -> list[str]:
        space = self.cfg.get("space") or {}
        names = [n for n in space if not str(space[n]).startswith("Fixed")] if space \
            else [c[3:] for c in self.curves.columns if c.startswith("hp_")]
        return [n for n in names if f"hp_{n}" in self.curves.columns]

    def log_scale(self, name: str) -> bool:
        rep = str((self.cfg.get("space") or {}).get(name, ""))
        if rep.startswith("LogUniform"):
            return True
        if rep.startswith(("Uniform", "Choice")):
            return False
        import pandas as pd

        v = pd.to_numeric(self.curves[f"hp_{name}"], errors="coerce").dropna()
        return bool(len(v) and (v > 0).all() and v.max() / v.min() >= 20)

    def row(self, worker: int, round_: int) -> dict[str, Any] | None:
        """The curve row of ``worker`` at ``round_``, else its last one before it (None without one)."""
        import bisect

        if not hasattr(self, "_rows"):
            self._rows: dict[int, tuple[list[int], list[dict[str, Any]]]] = {}
            for rec in self.curves.sort_values("round").to_dict("records"):
                rounds, recs = self._rows.setdefault(int(rec["worker"]), ([], []))
                rounds.append(int(rec["round"]))
                recs.append(rec)
            self._explores = {(d.get("dst"), d.get("round")): d.get("hparams") or {}
                              for d in self.decisions if d.get("kind") == "explore"}
        rounds, recs = self._rows.get(int(worker), ([], []))
        i = bisect.bisect_right(rounds, int(round_)) - 1
        return recs[i] if i >= 0 else None


def _colours(subpops: Sequence[Any]) -> dict[Any, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {sp: cmap(i % 10) for i, sp in enumerate(sorted(subpops, key=lambda s: (str(s) == "nan", str(s))))}


def _subpop_label(sp: Any) -> str:
    try:
        return f"P{int(float(sp))}"
    except (TypeError, ValueError):
        return "members"


# --------------------------------------------------------------------------- Figure 5
def top_return_figure(runs: Sequence[Run], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    from rlpop.summary import KNOWN_METHODS, method_group, top_curve

    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    others: set[str] = set()
    for r in runs:
        x, y = top_curve(r.curves, r.decisions)
        if len(x):
            groups.setdefault(method_group(r.cfg), []).append((x, y))
            if method_group(r.cfg) == "other":
                others.add(r.method)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = [*KNOWN_METHODS, "other"]
    names = {"rs": "random search", "pbt": "PBT", "fire": "FIRE PBT", "single": "single", "other": "other",
             "asha": "RS+ASHA", "asha+tpe": "TPE+ASHA", "asha+gp": "GP+ASHA", "hyperband": "HyperBand",
             "hyperband+tpe": "TPE+HyperBand", "hyperband+gp": "GP+HyperBand", "pb2": "PB2"}
    colours = {"rs": "tab:green", "pbt": "tab:blue", "fire": "tab:red", "single": "tab:gray", "other": "tab:purple",
               "asha": "tab:olive", "asha+tpe": "tab:brown", "asha+gp": "tab:pink", "hyperband": "gold",
               "hyperband+tpe": "darkkhaki", "hyperband+gp": "lightcoral", "pb2": "tab:cyan"}
    for g in [g for g in order if g in groups]:
        curves = groups[g]
        grid = np.unique(np.concatenate([x for x, _ in curves]))
        vals = np.full((len(curves), len(grid)), np.nan)
        for i, (x, y) in enumerate(curves):
            idx = np.searchsorted(x, grid, side="right") - 1  # the last point at or before each grid step
            ok = (idx >= 0) & (grid <= x[-1])
            vals[i, ok] = y[idx[ok]]
        n = len(curves)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(vals, axis=0)
                if n >= 5:
                    lo, hi, band = np.nanpercentile(vals, 25, axis=0), np.nanpercentile(vals, 75, axis=0), "IQR"
                else:
                    lo, hi, band = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0), "min-max"
        what = f"{names[g]} ({', '.join(sorted(others))})" if g == "other" else names[g]
        ax.plot(grid, med, color=colours[g], lw=2, drawstyle="steps-post",
                label=f"{what}: median of {n} runs, band {band}" if n > 1 else f"{what}: 1 run")
        if n > 1:
            ax.fill_between(grid, lo, hi, color=colours[g], alpha=0.2, step="post", lw=0)
    ax.set_xlabel("actor steps per worker")
    ax.set_ylabel("top average episode return so far (Q)")
    ax.set_title("Top return by any member (Figure 5)")
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no member evaluated yet", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


# --------------------------------------------------------------------------- Figure 4a
def _lineage(run: Run):
    from rlpop.summary import members

    if members(run.curves).empty:
        return None
    try:
        return run.run.lineage()
    except RunDirError as exc:
        print(f"note: {run.name}: no lineage drawn ({exc})", file=sys.stderr)
        return None


def _explored_value(run: Run, rec: dict[str, Any], name: str) -> float | None:
    """The value ``name`` takes in an exploit's destination: the explore of the same round, else the source's."""
    src = run.row(int(rec["src"]), int(rec["round"]))
    explored = run._explores.get((rec.get("dst"), rec.get("round")), {})
    if name in explored:
        return _num(explored[name])
    return None if src is None else _num(src.get(f"hp_{name}"))


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def hparams_figure(run: Run, path: Path, lineage=None) -> Path:
    import matplotlib.pyplot as plt
    import pandas as pd

    names = run.searched()
    m = run.curves[run.curves["role"] == "member"]
    colours = _colours(m["subpop"].unique())
    fig, axes = plt.subplots(max(1, len(names)), 1, figsize=(8, 3.2 * max(1, len(names))), squeeze=False)
    for ax, name in zip(axes[:, 0], names or [None]):
        if name is None:
            ax.text(0.5, 0.5, "no searched hyperparameter", ha="center", va="center", transform=ax.transAxes)
            continue
        col = f"hp_{name}"
        eval_steps = int(run.cfg.get("eval_steps") or 0)
        for w, rows in m.sort_values("round").groupby("worker"):
            y = list(pd.to_numeric(rows[col], errors="coerce"))
            x = list(rows["step"])  # a row's value applies to the steps trained up to it: drawn from the step before
            ax.plot([max(0, x[0] - eval_steps)] + x, y[:1] + y, drawstyle="steps-pre",
                    color=colours[rows["subpop"].iloc[0]], lw=0.8, alpha=0.6)
        for sp in sorted(colours, key=str):
            ax.plot([], [], color=colours[sp], lw=2, label=_subpop_label(sp))
        if lineage is not None and col in lineage.columns and len(lineage):
            ys = pd.to_numeric(lineage[col], errors="coerce")
            first = int(lineage["lineage_step"].iloc[0]) - eval_steps
            xs = [max(0, first)] + list(lineage["lineage_step"])
            ax.plot(xs, [ys.iloc[0]] + list(ys), drawstyle="steps-pre", color="black", lw=2.6,
                    label=f"best final member w{int(lineage['worker'].iloc[-1])} (lineage)", zorder=4)
        ex_x, ex_y, ex_c, su_x, su_y = [], [], [], [], []
        for d in run.decisions:
            if d.get("kind") == "exploit":
                dst = run.row(int(d["dst"]), int(d["round"]))
                v = _explored_value(run, d, name)
                if dst is not None and v is not None:
                    ex_x.append(int(dst["step"]))
                    ex_y.append(v)
                    ex_c.append(colours.get(dst["subpop"], "grey"))
            elif d.get("kind") == "success":
                child = run.row(int(d["child"]), int(d["round"]))
                v = None if child is None else _num(child.get(col))
                if v is not None:
                    su_x.append(int(child["step"]))
                    su_y.append(v)
        if ex_x:
            ax.scatter(ex_x, ex_y, marker="^", s=22, c=ex_c, edgecolors="dimgrey", linewidths=0.4, zorder=3,
                       label="exploit and explore")
        if su_x:
            ax.scatter(su_x, su_y, label="evaluator success", **_MARK_SUCCESS)
        if run.log_scale(name):
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.set_xlabel("actor steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0, 0].set_title(f"{run.name}: hyperparameters by sub-population (Figure 4a)")
    return _save(fig, path)


# --------------------------------------------------------------------------- population
def population_figure(run: Run, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from rlpop.summary import slot_steps, top_curve

    m = run.curves.assign(slot_step=slot_steps(run.curves, run.decisions))
    m = m[m["role"] == "member"]
    colours = _colours(m["subpop"].unique())
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for w, rows in m.sort_values("round").groupby("worker"):
        ax.plot(rows["slot_step"], rows["q"], color=colours[rows["subpop"].iloc[0]], lw=0.8, alpha=0.6)
    for sp in sorted(colours, key=str):
        ax.plot([], [], color=colours[sp], lw=2, label=_subpop_label(sp))
    x, y = top_curve(run.curves, run.decisions)
    if len(x):
        ax.plot(x, y, "k--", lw=1.2, drawstyle="steps-post", label="top return so far")
    ex, su = [], []
    for d in run.decisions:
        if d.get("kind") == "exploit":
            r = run.row(int(d["dst"]), int(d["round"]))
            if r is not None:
                ex.append((int(r["step"]), float(r["q"])))
        elif d.get("kind") == "success":
            r = run.row(int(d["child"]), int(d["round"]))
            if r is not None:
                su.append((int(r["step"]), float(r["q"])))
    if ex:
        ax.scatter(*zip(*ex), marker="x", s=18, color="dimgrey", zorder=3, label="exploit (member replaced)")
    if su:
        ax.scatter(*zip(*su), label="evaluator success (child)", **_MARK_SUCCESS)
    ax.set_xlabel("actor steps")
    ax.set_ylabel("Q (average episode return)")
    ax.set_title(f"{run.name}: population ({run.method})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- CLI
def plot_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None, fmt: str = "png") -> list[Path]:
    """Every figure for ``run_dirs``; returns the files written. Raises :class:`RunDirError` on a non-run dir."""
    import matplotlib

    matplotlib.use("Agg")
    runs = [Run(p) for p in run_dirs]
    if out is None:
        if len(runs) > 1:
            raise RunDirError("several runs: give --out DIR for the figures")
        out_dir = runs[0].path / "plots"
    else:
        out_dir = Path(out)
    written = [top_return_figure(runs, out_dir / f"top_return.{fmt}")]
    for r in runs:
        d = out_dir if len(runs) == 1 else out_dir / r.name
        written.append(hparams_figure(r, d / f"hparams.{fmt}", _lineage(r)))
        written.append(population_figure(r, d / f"population.{fmt}"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlpop plot", description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="output folder (default: RUN_DIR/plots for one run; needed for several)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"])
    args = p.parse_args(argv)
    try:
        files = plot_runs(args.run_dirs, args.out, args.format)
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the figures: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
