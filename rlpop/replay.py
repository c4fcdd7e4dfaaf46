"""``rlpop replay RUN_DIR [--member best|ID] [--runs-dir DIR]`` -- retrain one agent on a member's hparam schedule.

This RETRAINS: it does not play the trained agent (that is ``rlpop evaluate RUN_DIR``; ``rlpop export RUN_DIR``
writes it to a file). Trains ONE fresh agent that follows, from step 0, the hyperparameter schedule that :mod:`rlpop.lineage` traces
for a final member (default: the best final member) back through every copy -- the paper's "replay" (Table 1).
Same learner, env, ``agent.hparams``, eval interval and seed scheme as the run: the experiment is loaded from
RUN_DIR/experiment.py with config.json's overrides (as ``--resume`` does); only the strategy becomes
:class:`rlpop.experiment.Replay` (one worker that takes the id -- hence the seed -- of the lineage's
first worker and receives an ``Explore`` at each step where the schedule changes), ``total_steps`` becomes the
lineage's length, and the backend is inline. It runs through the normal controller into its own run directory
(``<name>_replay-<time>`` under ``--runs-dir``, default: beside RUN_DIR), which ``--resume`` continues like
any run, and then prints its final Q next to the population's best.

The schedule: lineage row i (``lineage_step`` s_i, trained with the row's hparams since s_{i-1}, s_{-1} = 0)
gives the entry ``(s_{i-1}, hparams of row i)``; consecutive equal entries are merged.

The copies: where the lineage passes from a worker to the destination of a copy (lineage step s, destination
w, its c-th copy received), the replayed agent goes on as w did after that copy (``FollowCopy``: w's streams of
epoch c, fresh episodes, its Q window cleared; :mod:`rlpop.streams`). A member's run depends on nothing but
its seed, its hyperparameters and the copies it received, so a batched PPO or V-MPO member's replay reproduces
its Q curve exactly (CPU, a run without ``--resume`` along the lineage: a resume restarts the envs).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rlpop.store import RunDir, RunDirError

if TYPE_CHECKING:
    import pandas as pd

    from rlpop.experiment import Experiment

_EXPERIMENT_PY = '''"""Replay of the hyperparameter schedule of worker {member} of {source} (written by rlpop replay).

The replayed run's experiment file is replayed_experiment.py beside this file; its overrides, the schedule and
the replay's length are below, so `rlpop run --resume THIS_RUN_DIR` rebuilds the same experiment.
"""
import json
from pathlib import Path

from rlpop.replay import replay_experiment
from rlpop.run import load_experiment

_base = load_experiment(Path(__file__).resolve().with_name("replayed_experiment.py"))
experiment = replay_experiment(_base, overrides=json.loads({overrides!r}), schedule=json.loads({schedule!r}),
                               worker={worker}, total_steps={total_steps}, follow=json.loads({follow!r}))
'''


def schedule_from_trace(sched: pd.DataFrame, curves: pd.DataFrame, names: Sequence[str]) -> list[tuple[int, dict]]:
    """``[(step, {name: value})]`` from a lineage trace (see the module docstring). Values come from the traced
    curve rows' ``hparams`` JSON (exact types), restricted to ``names``; the trace's ``hp_*`` columns hold the
    same values."""
    hp_json = {}
    if "hparams" in curves.columns:
        hp_json = {(int(w), int(r)): h for w, r, h in zip(curves["worker"], curves["round"], curves["hparams"])}
    out: list[tuple[int, dict]] = []
    prev = 0
    for _, row in sched.iterrows():
        raw = hp_json.get((int(row["worker"]), int(row["round"])))
        try:
            full = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError:
            full = None
        if isinstance(full, dict):
            hp = {n: full[n] for n in names if n in full}
        else:
            hp = {n: row[f"hp_{n}"] for n in names if f"hp_{n}" in row.index}
        if not out or out[-1][1] != hp:
            out.append((prev, hp))
        prev = int(row["lineage_step"])
    return out


def follows_from_trace(sched: pd.DataFrame) -> list[list[int]]:
    """``[[step, worker, epoch]]``: where the lineage passes into a copy's destination ``worker`` (its
    ``epoch``-th copy received), at lineage step ``step`` (see the module docstring)."""
    out = []
    rows = sched.reset_index(drop=True)
    for i in range(len(rows) - 1):
        if rows.loc[i, "via"] and "copies" in rows.columns:
            nxt = rows.loc[i + 1]
            out.append([int(rows.loc[i, "lineage_step"]), int(nxt["worker"]), int(nxt["copies"])])
    return out


def traced_schedule(run_dir: str | Path, member: int | None = None) -> tuple[pd.DataFrame, list[tuple[int, dict]]]:
    """(lineage trace, replay schedule) of ``member`` (None: the best final member) of a run."""
    from rlpop.runs import load_run

    run = load_run(run_dir)
    cfg, curves = run.config, run.curves
    names = list(cfg.get("space") or [c[3:] for c in curves.columns if c.startswith("hp_")])
    sched = run.lineage(member)
    if sched.empty:
        raise RunDirError(f"{run_dir}: the lineage of worker {member} has no Q row to replay")
    return sched, schedule_from_trace(sched, curves, names)


def replay_experiment(base: Experiment, overrides: dict[str, str], schedule: list, worker: int,
                      total_steps: int, follow: Sequence[Sequence[int]] = ()) -> Experiment:
    """The replay's experiment: ``base`` with the run's ``overrides``, the replay strategy, its length, inline."""
    import dataclasses

    from rlpop.experiment import Replay

    exp = base.with_overrides(overrides)
    return dataclasses.replace(exp, name=f"{exp.name}_replay", backend="inline", total_steps=int(total_steps),
                               strategy=Replay(schedule=[[int(s), dict(hp)] for s, hp in schedule],
                                                worker=int(worker), follow=[[int(x) for x in f] for f in follow]))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rlpop replay",
        description="RETRAIN one fresh agent, from step 0, on the hyperparameter schedule of a member (default: the "
                    "best final member) traced back through every copy -- the paper's replay. It trains for the "
                    "lineage's steps into a new run directory; it does not play the trained agent: for that use "
                    "`rlpop evaluate RUN_DIR` (and `rlpop export RUN_DIR` for a policy file).")
    p.add_argument("run_dir")
    p.add_argument("--member", default="best", help="final member to replay: 'best' (default) or a worker id")
    p.add_argument("--runs-dir", help="where the replay's run directory is made (default: beside RUN_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    args = p.parse_args(argv)
    from rlpop.run import UsageError

    try:
        return _main(args)
    except (UsageError, RunDirError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from rlpop.run import UsageError, execute, experiment_dir_of, load_experiment, run_config
    from rlpop.runs import load_run

    source = load_run(args.run_dir)
    src = source.rd
    cfg = source.config
    if args.member == "best":
        member = None
    else:
        try:
            member = int(args.member)
        except ValueError:
            raise UsageError(f"--member {args.member!r}: give 'best' or a worker id (an integer)") from None
    if not (src.path / "experiment.py").is_file():
        from rlpop.run import recorded_experiment

        recorded_experiment(src.path, cfg)  # one line: where to copy the experiment file back from
    sched, schedule = traced_schedule(src.path, member)
    member = int(sched.iloc[-1]["worker"]) if member is None else member
    root = int(sched.iloc[0]["worker"])
    total = int(sched["lineage_step"].iloc[-1])
    overrides = {str(k): str(v) for k, v in (cfg.get("overrides") or {}).items()}
    base = load_experiment(src.path / "experiment.py")
    follow = follows_from_trace(sched)
    exp = replay_experiment(base, overrides, schedule, root, total, follow)  # validates before a directory exists

    run = RunDir.create(Path(args.runs_dir) if args.runs_dir else src.path.parent, exp.name)
    try:
        shutil.copy(src.path / "experiment.py", run.path / "replayed_experiment.py")
        (run.path / "experiment.py").write_text(_EXPERIMENT_PY.format(
            member=member, source=src.path, overrides=json.dumps(overrides),
            schedule=json.dumps([[s, hp] for s, hp in schedule]), worker=root, total_steps=total,
            follow=json.dumps(follow)))
    except OSError as exc:
        raise UsageError(f"cannot write {run.path}: {exc.strerror or exc}") from exc
    exp = load_experiment(run.path / "experiment.py")  # the file --resume will load: the same experiment
    curves = source.curves
    final = curves[curves["worker"] == member].sort_values("round").iloc[-1]
    replay_of = {"run": str(src.path), "member": member, "root_worker": root, "steps": total, "follow": follow,
                 "member_final_q": float(final["q"]), "member_final_step": int(final["step"])}
    # the replayed run's own folder (its env and learner modules) for a --resume of the replay
    run.write_config(run_config(exp, "inline", None, {}, run.path / "experiment.py", replay_of=replay_of,
                                experiment_dir=experiment_dir_of(src.path) or str(src.path)))
    print(f"replaying w{member} of {src.path}: {len(schedule)} schedule entr{'y' if len(schedule) == 1 else 'ies'} "
          f"over {total:,} steps, starting as w{root} (its seed)", flush=True)
    rc = execute(exp, run, "inline", None, quiet=args.quiet)
    mine = load_run(run.path).curves
    last = mine.sort_values("round").iloc[-1]
    q = float(last["q"])
    print(f"replay final Q = {q:.4g} at step {int(last['step']):,} ({run.path})")
    print(f"population: w{member} final Q = {replay_of['member_final_q']:.4g} at its step "
          f"{replay_of['member_final_step']:,} (lineage {total:,} steps)"
          + ("" if math.isnan(q) else f"; replay - population = {q - replay_of['member_final_q']:+.4g}"))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
