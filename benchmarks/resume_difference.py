"""How much a resumed run differs from the same run uninterrupted: ``python benchmarks/resume_difference.py``.

What a checkpoint holds: every member's weights, optimiser, normalisers, hparams and streams (rlpop.streams:
minibatch order, action noise, its env seeds' position). What it does not hold: the envs' states. So a resumed
run starts every member's envs afresh (from the next seeds of their own env streams) at the checkpoint, and
from there its Q rows differ from the uninterrupted run's; before the checkpoint they are identical.

For each env: the same PBT experiment run to the end (A), and run again (B) interrupted right after the
checkpoint of round ``--stop-round`` (a listener raises KeyboardInterrupt there, as Ctrl-C does) and resumed to
the end. Writes the rows that differ and the size of the differences to ``benchmarks/results/
resume_difference.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Report  # noqa: E402


def experiment(env: str, total_steps: int):
    from rlpop.experiment import PBT, Agent, Experiment
    from rlpop.hparams import LogUniform

    return Experiment(name=f"resume_{env}", env=env,
                      agent=Agent("ppo", hparams={"rollout_steps": 512, "envs_per_actor": 4, "epochs": 4,
                                                  "minibatch_size": 128}),
                      space={"lr": LogUniform(1e-4, 3e-3)}, strategy=PBT(population=4, ready_steps=2048),
                      total_steps=total_steps, eval_steps=512)


def curves_of(exp, root: Path, name: str, stop_round: int | None):
    import pandas as pd

    from rlpop.events import CheckpointSaved
    from rlpop.run import execute
    from rlpop.store import RunDir

    run = RunDir.create(root, name)

    def stopper(event):
        if stop_round is not None and isinstance(event, CheckpointSaved) and event.round == stop_round:
            raise KeyboardInterrupt

    try:
        assert execute(exp, run, "inline", quiet=True, listeners=[stopper]) == 0
    except KeyboardInterrupt:
        assert execute(exp, run, "inline", quiet=True, resume=True) == 0
    return pd.read_csv(run.path / "curves.csv").sort_values(["worker", "round"]).reset_index(drop=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["Pendulum-v1", "Hopper-v5"])
    p.add_argument("--total-steps", type=int, default=16384)
    p.add_argument("--stop-round", type=int, default=16, help="interrupted after this round's checkpoint")
    p.add_argument("--out", default=str(RESULTS_DIR / "resume_difference.json"))
    args = p.parse_args(argv)
    report = Report(args.out, "resume_difference", total_steps=args.total_steps, stop_round=args.stop_round,
                    results={})
    for env in args.envs:
        exp = experiment(env, args.total_steps)
        with tempfile.TemporaryDirectory() as tmp:
            a = curves_of(exp, Path(tmp), "uninterrupted", None)
            b = curves_of(exp, Path(tmp), "resumed", args.stop_round)
        assert list(a["round"]) == list(b["round"]) and list(a["worker"]) == list(b["worker"])
        before = a["round"] <= args.stop_round
        same = (a["q"] == b["q"]) | (a["q"].isna() & b["q"].isna())  # NaN: no episode ended in the interval
        diff = (a["q"] - b["q"]).abs()
        after = diff[~before].dropna()
        last = a["round"] == a["round"].max()
        res = {
            "rows_before_checkpoint": int(before.sum()),
            "rows_before_checkpoint_identical": bool(same[before].all()),
            "rows_after_checkpoint": int((~before).sum()),
            "rows_after_checkpoint_identical": int(same[~before].sum()),
            "abs_q_diff_after_mean": float(after.mean()),
            "abs_q_diff_after_max": float(after.max()),
            "q_after_mean_uninterrupted": float(a["q"][~before].mean()),
            "best_final_q": {"uninterrupted": float(a["q"][last].max()), "resumed": float(b["q"][last].max())},
        }
        report.doc["results"][env] = res
        report.save()
        print(env, res, flush=True)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
