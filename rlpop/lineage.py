"""Trace the hyperparameter schedule of a final member back to step 0 through its copies.

``rlpop lineage RUN_DIR [--worker ID]`` prints it; :func:`trace_schedule` (or
``rlpop.load_run(RUN_DIR).lineage(ID)``) returns it as a pandas DataFrame. Reads only the run directory,
through :mod:`rlpop.runs`.

A member's weights have a history: trained by the member itself since its last
copy, and before that by whoever it copied -- the source of an exploit, the
evaluator of an evaluator success, the parent of an evaluator assignment --
recursively. Within a round, Q rows come before that round's decisions, and
decisions apply in their logged order, so a copy made after another copy in the
same round inherits the earlier one.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rlpop.runs import best_final_member, read_curves, read_decisions  # noqa: F401 -- their old home
from rlpop.store import RunDir, RunDirError

if TYPE_CHECKING:
    import pandas as pd

# decision kind -> (field of the worker whose weights are replaced, field of the worker they come from)
_COPIES = {"exploit": ("dst", "src"), "assign": ("evaluator", "parent"), "success": ("child", "evaluator")}


def trace_schedule(run_dir: str | Path, worker: int | None = None) -> pd.DataFrame:
    """:func:`trace` of a run directory, read through :func:`rlpop.load_run` (the one reader)."""
    from rlpop.runs import Run

    return Run(run_dir, check=False).lineage(worker)


def trace(curves: pd.DataFrame, decisions: list[dict], worker: int | None = None,
          run_dir: str | Path = "the run") -> pd.DataFrame:
    """Rows of the Q table along the lineage of ``worker`` (default: the best final member), oldest first, from
    a run's ``curves`` and ``decisions`` (records) as :class:`rlpop.runs.Run` reads them.

    Columns: ``lineage_step`` (actor steps the weights have been trained for), the curve-table columns of the
    worker that trained at that point (``worker``, ``round``, ``step``, ``q``, ``copies`` -- how many copies
    that worker had received --, ``hp_*``), and ``via`` (the copy that brought the weights to the next worker of
    the chain, on the last row before it).
    """
    import pandas as pd

    # every Q row stands for the steps its worker trained since its previous row
    curves = curves.sort_values(["worker", "round"])
    curves["trained"] = curves.groupby("worker")["step"].diff().fillna(curves["step"]).clip(lower=0)
    if worker is None:
        if not (curves["role"] == "member").any():
            raise RunDirError(f"{run_dir} has no member evaluated yet (curves.csv has only evaluator rows)")
        worker = best_final_member(curves)
    elif worker not in set(curves["worker"].astype(int)):
        known = sorted(set(curves.loc[curves["role"] == "member", "worker"].astype(int)))
        raise RunDirError(f"worker {worker} has no Q evaluation in {Path(run_dir) / 'curves.csv'} "
                          f"(members: {', '.join(map(str, known)) or 'none yet'})")
    copies = []  # (round, seq, dst, src, kind)
    for seq, d in enumerate(decisions):
        if d.get("kind") in _COPIES:
            dst_f, src_f = _COPIES[d["kind"]]
            copies.append((int(d["round"]), seq, int(d[dst_f]), int(d[src_f]), d["kind"]))
    # position (round, seq): Q rows of round r sit at (r, -1), before the decisions of round r
    cur, upto = int(worker), (math.inf, math.inf)
    chain: list[tuple[pd.DataFrame, str]] = []  # newest first: (rows, the copy that started them)
    while True:
        into = [c for c in copies if c[2] == cur and (c[0], c[1]) < upto]
        last = max(into, key=lambda c: (c[0], c[1])) if into else None
        lo_round = last[0] if last else -math.inf
        rows = curves[(curves["worker"] == cur) & (curves["round"] > lo_round)
                      & (curves["round"].map(lambda r: (r, -1) < upto))].sort_values("round").copy()
        rows["via"] = ""
        chain.append((rows, f"{last[4]} round {last[0]}: w{last[2]} <- w{last[3]}" if last else ""))
        if last is None:
            break
        cur, upto = last[3], (last[0], last[1])
    chain.reverse()
    for (rows, _), (_, copy_text) in zip(chain, chain[1:]):
        if not rows.empty:
            rows.loc[rows.index[-1], "via"] = copy_text  # the weights left this worker here
    ordered = [rows for rows, _ in chain if not rows.empty]
    if not ordered:
        return pd.DataFrame()
    out = pd.concat(ordered, ignore_index=True)
    out["lineage_step"] = out["trained"].cumsum().astype(int)
    cols = ["lineage_step", "worker", "role", "subpop", "round", "step", "q", "copies"]
    cols += [c for c in out.columns if c.startswith("hp_")] + ["via"]
    return out[[c for c in cols if c in out.columns]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rlpop lineage", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--worker", type=int, help="final member to trace (default: the best final member)")
    p.add_argument("--csv", help="also write the schedule to this CSV file")
    args = p.parse_args(argv)
    try:
        RunDir(args.run_dir).check_is_run_dir()
        sched = trace_schedule(args.run_dir, args.worker)
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import pandas as pd

    with pd.option_context("display.max_rows", 200, "display.width", 160):
        print(sched.to_string(index=False))
    if args.csv:
        try:
            sched.to_csv(args.csv, index=False)
        except OSError as exc:
            print(f"error: cannot write {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
