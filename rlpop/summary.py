"""``rlpop summary RUN_DIR ... [--threshold Q] [--out FILE.csv]`` -- one table across runs.

Reads only the run directories (a run in progress too). One row per run:

- ``run``: the run directory's name; ``method`` and ``seed``: from config.json;
- ``best_final_q``: the highest Q of any member at its last evaluation (:func:`rlpop.lineage.best_final_member`),
  with ``best_worker`` naming it;
- ``auc``: the area under the top-return curve (:func:`top_curve`) by the trapezoidal rule over its points,
  divided by its step range (last - first step), i.e. its mean height (the value itself with one point);
- ``steps_to_threshold`` (with ``--threshold Q``): the first actor step (per worker; per slot over its trials
  for ASHA / HyperBand, :func:`slot_steps`) at which the top-return curve reaches ``Q`` (empty when it never
  does);
- ``exploits``, ``successes``: exploit and evaluator-success records in decisions.jsonl;
- ``wall_s``: status.json's wall time (else the last wall_time of curves.csv);
- ``env_steps``: actor steps trained by all workers (members and evaluators), summed over the curve rows'
  per-worker step increments; ``env_steps_per_s`` = env_steps / wall_s;
- ``finished``: status.json says the run finished and curves.csv holds every round it recorded (a cut or
  partial curves.csv is said in one line, and the run does not count as finished).

The table is printed (rich when installed, else plain); ``--out FILE.csv`` writes it as CSV and as markdown
(``FILE.md`` beside it).

Run directories are read with :func:`rlpop.load_run` (as ``rlpop.plot``, ``rlpop.lineage`` and ``rlpop.replay``
do); :func:`top_curve` is the top-return curve they share.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rlpop.store import RunDirError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: the methods plots and tables group runs by (config.json's ``method``; anything else is "other"), in the order
#: the plots draw them
KNOWN_METHODS = ("rs", "asha", "asha+tpe", "asha+gp", "hyperband", "hyperband+tpe", "hyperband+gp", "pbt", "pb2",
                 "fire", "single")


# --------------------------------------------------------------------------- a run's curves
def members(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[curves["role"] == "member"]


def slot_steps(curves: pd.DataFrame, decisions: Sequence[dict[str, Any]] | None = None) -> pd.Series:
    """Each row's actor steps counted over its worker's slot: ``step``, plus, for a trial-based strategy (ASHA,
    HyperBand), the steps of the slot's earlier trials. A restarted trial counts ``step`` from 0 again; its
    ``restart_trial`` record (``decisions``) gives the slot's steps so far, added to the worker's rows of later
    rounds. Without restart records: ``step`` itself."""
    steps = curves["step"].copy()
    restarts = [d for d in decisions or () if d.get("kind") == "restart_trial"]
    for d in sorted(restarts, key=lambda d: int(d["round"])):  # a later restart's offset (larger) wins
        rows = (curves["worker"] == int(d["worker"])) & (curves["round"] > int(d["round"]))
        steps[rows] = curves.loc[rows, "step"] + int(d["step"])
    return steps


def top_curve(curves: pd.DataFrame, decisions: Sequence[dict[str, Any]] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The top-return curve of one run (the paper's Figure 5): at each actor step ``s`` at which a member was
    evaluated, the highest Q that any member (of any sub-population; evaluators do not count) scored at its own
    actor step <= ``s``. Non-decreasing. Steps are each worker's own actor-step counter (``step`` column); with
    the run's ``decisions``, a trial-based strategy's steps are its slots' steps over all their trials
    (:func:`slot_steps`), so every method is compared at the actor steps it spent."""
    import numpy as np

    m = members(curves).assign(step=slot_steps(curves, decisions)).dropna(subset=["q"])
    if m.empty:
        return np.zeros(0), np.zeros(0)
    per_step = m.groupby("step")["q"].max().sort_index()
    return per_step.index.to_numpy(dtype=float), np.maximum.accumulate(per_step.to_numpy(dtype=float))


def best_final_q(curves: pd.DataFrame, subpop: int | None = None) -> float:
    """The best final Q among members: each member's Q at its last step (``step`` column), best over members (of
    sub-population ``subpop`` only, if given)."""
    m = members(curves)
    if subpop is not None:
        m = m[m["subpop"] == subpop]
    return float(m.sort_values(["worker", "step"]).groupby("worker").tail(1)["q"].max())


def median_hparam(curves: pd.DataFrame, name: str, subpop: int | None = None) -> pd.Series:
    """The median of hyperparameter ``name`` (column ``hp_<name>``) over the members (of ``subpop`` only, if
    given) at each ``step``."""
    m = members(curves)
    if subpop is not None:
        m = m[m["subpop"] == subpop]
    return m.groupby("step")[f"hp_{name}"].median()


def first_step_below(series: pd.Series, threshold: float) -> int | None:
    """The first index (step) at which ``series`` is below ``threshold``; None if it never is."""
    below = series[series < threshold]
    return int(below.index.min()) if len(below) else None


def area_under(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under (x, y) divided by the step range (the mean height); y[0] with one point."""
    import numpy as np

    if len(x) == 0:
        return math.nan
    if len(x) == 1 or x[-1] == x[0]:
        return float(y[-1])
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if hasattr(np, "trapezoid") \
        else float(np.trapz(y, x) / (x[-1] - x[0]))


def env_steps(curves: pd.DataFrame, decisions: Sequence[dict[str, Any]] | None = None) -> int:
    """Actor steps trained by every worker: the sum of each worker's step increments between its Q rows (over
    its slot's trials, :func:`slot_steps`, given the run's ``decisions``)."""
    c = curves.assign(step=slot_steps(curves, decisions)).sort_values(["worker", "round"])
    inc = c.groupby("worker")["step"].diff().fillna(c["step"]).clip(lower=0)
    return int(inc.sum())


def method_group(cfg: dict[str, Any]) -> str:
    m = str(cfg.get("method", "other"))
    return m if m in KNOWN_METHODS else "other"


# --------------------------------------------------------------------------- the table
def summarise(run_dir: str | Path, threshold: float | None = None) -> dict[str, Any]:
    """One row of the table (see the module docstring). Raises :class:`RunDirError` for a non-run directory."""
    from rlpop.runs import best_final_member, load_run

    run = load_run(run_dir)
    cfg = run.config
    curves = run.curves
    decisions = run.decision_records
    try:
        status = run.status
    except RunDirError:
        status = {}
    row: dict[str, Any] = {"run": run.name, "method": cfg.get("method", ""), "seed": cfg.get("seed", "")}
    if members(curves).empty:
        row.update(best_worker="", best_final_q=math.nan)
    else:
        w = best_final_member(curves)
        last = curves[curves["worker"] == w].sort_values("round").iloc[-1]
        row.update(best_worker=w, best_final_q=float(last["q"]))
    x, y = top_curve(curves, decisions)
    row["auc"] = area_under(x, y)
    if threshold is not None:
        hit = [s for s, v in zip(x, y) if v >= threshold]
        row["steps_to_threshold"] = int(hit[0]) if hit else ""
    row["exploits"] = sum(1 for d in decisions if d.get("kind") == "exploit")
    row["successes"] = sum(1 for d in decisions if d.get("kind") == "success")
    wall = status.get("wall")
    if not isinstance(wall, (int, float)) and "wall_time" in curves.columns:
        wall = float(curves["wall_time"].max())
    row["wall_s"] = round(float(wall), 2) if isinstance(wall, (int, float)) else math.nan
    row["env_steps"] = env_steps(curves, decisions)
    row["env_steps_per_s"] = round(row["env_steps"] / row["wall_s"], 1) if row["wall_s"] and row["wall_s"] > 0 \
        else math.nan
    row["finished"] = run.finished  # not for a run whose curves.csv is partial (rlpop.runs.curves_gap)
    return row


def table(run_dirs: Sequence[str | Path], threshold: float | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([summarise(r, threshold) for r in run_dirs])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def print_table(df: pd.DataFrame) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(df.to_string(index=False, formatters={c: _fmt for c in df.columns}))
        return
    t = Table(title="rlpop summary")
    for c in df.columns:
        t.add_column(c, justify="left" if c in ("run", "method") else "right", no_wrap=True)
    for _, r in df.iterrows():
        t.add_row(*(_fmt(r[c]) for c in df.columns))
    Console(width=max(220, shutil.get_terminal_size().columns)).print(t)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlpop summary", description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--threshold", type=float, help="report the actor steps the top-return curve needs to reach Q")
    p.add_argument("--out", help="write the table to FILE.csv and FILE.md")
    args = p.parse_args(argv)
    try:
        df = table(args.run_dirs, args.threshold)
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(df)
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(out, index=False)
            out.with_suffix(".md").write_text(to_markdown(df))
        except OSError as exc:
            print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
