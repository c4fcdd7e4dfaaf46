"""A small FIRE PBT run on the custom env through the CLI, on both backends, then killed and resumed."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import DATA, run_cli


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
    proc = subprocess.Popen([sys.executable, "-m", "rlpop.run", str(DATA / "tiny_fire.py"), "--runs-dir",
                             str(tmp_path), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline, run = time.time() + 120, None
    while time.time() < deadline:
        runs = list(tmp_path.glob("tiny_fire-*"))
        st = runs[0] / "status.json" if runs else None
        if st is not None and st.exists() and json.loads(st.read_text()).get("round", 0) >= 4:
            run = runs[0]
            break
        time.sleep(0.2)
    assert run is not None, "the run never reached its second checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not json.loads((run / "status.json").read_text())["finished"]
    res = run_cli("--resume", str(run), "--quiet")
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
