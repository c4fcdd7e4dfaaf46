"""A small FIRE PBT run on the custom env through the CLI, on both backends, then killed and resumed."""
import json
import os
import signal

import pandas as pd
import pytest

from conftest import DATA, run_cli, start_gated_run


def _check_fire_run(run):
    curves = pd.read_csv(run / "curves.csv")
    members = curves[curves.role == "member"]
    assert sorted(members.worker.unique()) == [0, 1, 2, 3]
    assert set(members.subpop) == {1, 2}
    for w, g in members.groupby("worker"):
        assert list(g.step) == list(range(256, 2049, 256)), f"member {w}: {list(g.step)}"
    evaluators = curves[curves.role == "evaluator"]
    assert set(evaluators.worker) <= {4, 5} and len(evaluators) > 0  # evaluators trained while assigned
    recs = [json.loads(l) for l in (run / "decisions.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in recs}
    assert "assign" in kinds and "stop" in kinds
    assert all(r["reason"] for r in recs if r["kind"] == "stop")
    for r in recs:
        if r["kind"] == "assign":
            assert curves.loc[curves.worker == r["parent"], "subpop"].iloc[0] == 2
            assert curves.loc[curves.worker == r["child"], "subpop"].iloc[0] == 1
    assert json.loads((run / "status.json").read_text())["finished"]
    return recs


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_small_fire_run_through_the_cli(backend, tmp_path):
    res = run_cli(str(DATA / "tiny_fire.py"), "--backend", backend, "--runs-dir", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = list(tmp_path.iterdir())
    _check_fire_run(run)


def test_fire_run_killed_then_resumed(tmp_path):
    # killed in round 5, after the checkpoint of round 4 (128 steps per env a round; the gate is an event the run
    # writes, so this does not depend on the machine's speed)
    proc, runs, gate, env = start_gated_run(DATA / "tiny_fire.py", tmp_path, at=560)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (run,) = list(runs.glob("tiny_fire-*"))
    assert json.loads((run / "status.json").read_text())["round"] == 4
    assert not json.loads((run / "status.json").read_text())["finished"]
    (gate / "release").touch()
    res = run_cli("--resume", str(run), "--quiet", env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    recs = _check_fire_run(run)
    # the strategy state came back from the checkpoint: no evaluator is assigned twice at once
    busy = {}
    for r in recs:
        if r["kind"] == "assign":
            assert r["evaluator"] not in busy, r
            busy[r["evaluator"]] = r["parent"]
        elif r["kind"] == "stop":
            busy.pop(r["evaluator"], None)
