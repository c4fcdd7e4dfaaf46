"""The run directory cannot be corrupted or misread: one writer, damaged and unsafe checkpoints,
a full disk, an invalid config.json, and the lineage CLI on directories that are not (yet) runs."""
import errno
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from rlpop.store import files, lock
from rlpop.store import CURVE_FIELDS, NotARunDirError, RunDir, RunDirError, UnsafeCheckpointError


def _payload(round_):
    """What the controller saves, in small: tensors, numpy normalisers and scalars, strategy/rng state."""
    return {
        "controller": {"round": round_, "wall": 1.5, "train_s": 1.0, "counts": {"exploit": 1},
                       "records": {0: {"id": 0, "role": "member", "hparams": {"lr": 3e-4}, "alive": True}}},
        "strategy": {"strategy": "pbt", "rng": np.random.default_rng(0).bit_generator.state,
                     "last_ready": {"0": 100}},
        "workers": {0: {"learner": {"model": {"w": torch.arange(4.0) * round_},
                                    "obs_rms": {"mean": np.zeros(3), "var": np.ones(3), "count": 4.0},
                                    "reward_scaler": {"rms": {"mean": np.float64(0.5), "var": np.float64(2.0)},
                                                      "returns": np.zeros(2)}},
                        "steps": 100 * round_, "recent": [1.0, 2.0]}},
    }


def _run(tmp_path):
    run = RunDir.create(tmp_path, "r")
    run.write_config({"name": "r"})
    return run


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _write_lock(run, pid, host=None, start="auto"):
    rec = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00 UTC",
           "process_start": lock._process_start(pid) if start == "auto" else start, "token": "x"}
    run.lock_path.write_text(json.dumps(rec))


# -- one writer ---------------------------------------------------------------------------------------------------
def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    run = _run(tmp_path)
    proc = _sleeper()
    try:
        _write_lock(run, proc.pid)
        with pytest.raises(RunDirError) as exc:
            run.acquire_lock()
        msg = str(exc.value)
        assert "\n" not in msg
        assert f"in use by pid {proc.pid} on host {socket.gethostname()}" in msg and f"kill {proc.pid}" in msg
        assert json.loads(run.lock_path.read_text())["pid"] == proc.pid  # untouched
    finally:
        proc.kill()
        proc.wait()
    note = run.acquire_lock()  # the holder died: a stale lock
    assert note and f"pid {proc.pid}" in note and "no longer running" in note
    rec = json.loads(run.lock_path.read_text())
    assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname() and rec["started"]
    assert run.acquire_lock() is None  # re-entrant for the holder
    with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
        RunDir(run.path).acquire_lock()  # a second writer in this process
    run.release_lock()
    assert not run.lock_path.exists()
    with run.locked() as note:
        assert note is None and run.lock_path.exists()
    assert not run.lock_path.exists()


def test_lock_of_a_reused_pid_is_stale_and_another_hosts_lock_is_refused(tmp_path):
    run = _run(tmp_path)
    _write_lock(run, os.getpid(), start=lock._process_start(os.getpid()) - 1000)  # pid now someone else
    note = run.acquire_lock()
    assert "no longer running" in note and "another process" in note
    run.release_lock()
    _write_lock(run, 12345, host="elsewhere.example")
    with pytest.raises(RunDirError) as exc:
        run.acquire_lock()
    assert "host elsewhere.example" in str(exc.value) and f"delete {run.lock_path}" in str(exc.value)
    run.release_lock()  # not ours: stays
    assert run.lock_path.exists()


# -- checkpoints ----------------------------------------------------------------------------------------------------
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run = _run(tmp_path)
    run.save_checkpoint(4, _payload(4))
    p8 = run.save_checkpoint(8, _payload(8))
    data = p8.read_bytes()
    p8.write_bytes(data[: len(data) // 2])
    path, payload, msgs = run.load_latest_checkpoint()
    assert path.name == "ckpt-00000004.pt" and payload["controller"]["round"] == 4
    assert msgs == ["checkpoints/ckpt-00000008.pt is damaged (truncated file); using ckpt-00000004.pt"]
    # the numpy types of the learners' normalisers come back as they were saved
    learner = payload["workers"][0]["learner"]
    assert isinstance(learner["obs_rms"]["mean"], np.ndarray) and learner["obs_rms"]["mean"].dtype == np.float64
    assert isinstance(learner["reward_scaler"]["rms"]["mean"], np.float64)
    assert torch.equal(learner["model"]["w"], torch.arange(4.0) * 4)
    assert payload["strategy"]["rng"] == np.random.default_rng(0).bit_generator.state
    with pytest.raises(RunDirError, match="ckpt-00000008.pt is damaged"):
        run.load_checkpoint(p8)  # the old single-file API names the file too

    for bad, why in ((b"", "empty file"), (b"not a checkpoint at all" * 10, "unknown format")):
        p8.write_bytes(bad)
        assert why in run.load_latest_checkpoint()[2][0]
    # the run goes on from round 4: its next checkpoint replaces the abandoned one and keeps round 4
    run.save_checkpoint(5, _payload(5))
    assert [p.name for p in run.checkpoints()] == ["ckpt-00000004.pt", "ckpt-00000005.pt"]


def test_all_checkpoints_damaged_raises_naming_them(tmp_path):
    run = _run(tmp_path)
    assert run.load_latest_checkpoint() == (None, None, [])
    for r in (1, 2):
        p = run.save_checkpoint(r, _payload(r))
        p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(RunDirError) as exc:
        run.load_latest_checkpoint()
    msg = str(exc.value)
    assert str(run.path / "checkpoints") in msg and "ckpt-00000001.pt" in msg and "ckpt-00000002.pt" in msg


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_runs_code_is_refused_and_not_executed(tmp_path):
    run = _run(tmp_path)
    run.save_checkpoint(1, _payload(1))
    marker = tmp_path / "pwned"
    evil = run.path / "checkpoints" / "ckpt-00000002.pt"
    torch.save({**_payload(2), "x": _Evil(marker)}, evil)
    for load in (run.load_latest_checkpoint, lambda: run.load_checkpoint(evil)):
        with pytest.raises(UnsafeCheckpointError) as exc:
            load()
        msg = str(exc.value)
        assert str(evil) in msg and "system" in msg and "\n" not in msg
        assert isinstance(exc.value, RunDirError)
    assert not marker.exists()


# -- a full disk ------------------------------------------------------------------------------------------------------
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_raises_and_leaves_no_tmp(tmp_path, monkeypatch):
    run = _run(tmp_path)
    run.append_rows("curves.csv", CURVE_FIELDS, [{"round": 1, "worker": 0, "q": 1.0}])
    before = (run.path / "curves.csv").read_bytes()
    resume = f"rlpop run --resume {run.path}"

    monkeypatch.setattr(torch, "save", _enospc)
    with pytest.raises(RunDirError, match="no space left on device writing .*ckpt-00000003.pt") as exc:
        run.save_checkpoint(3, _payload(3))
    assert resume in str(exc.value)
    monkeypatch.undo()

    monkeypatch.setattr(files.os, "fsync", _enospc)  # the data reached the tmp file, the flush did not
    for write in (lambda: run.save_checkpoint(3, _payload(3)), lambda: run.write_status(round=3),
                  lambda: run.write_config({"name": "r2"})):
        with pytest.raises(RunDirError, match="no space left on device") as exc:
            write()
        assert resume in str(exc.value)
    monkeypatch.undo()
    assert json.loads(run.config_path.read_text()) == {"name": "r"}

    real_open = open

    class _HalfWrite:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            _enospc()

    monkeypatch.setattr(files, "open", lambda *a, **k: _HalfWrite(real_open(*a, **k)), raising=False)
    with pytest.raises(RunDirError, match="no space left on device writing .*curves.csv"):
        run.append_rows("curves.csv", CURVE_FIELDS, [{"round": 2, "worker": 0, "q": 2.0}] * 5)
    with pytest.raises(RunDirError, match="decisions.jsonl"):
        run.append_decision({"kind": "exploit", "round": 2}, "round 2: w0 <- w1")
    monkeypatch.undo()
    assert (run.path / "curves.csv").read_bytes() == before  # no half row for the next append to glue onto
    assert (run.path / "decisions.jsonl").read_bytes() == b""
    assert not list(run.path.rglob("*.tmp"))
    assert [p.name for p in run.checkpoints()] == []


# -- config.json ------------------------------------------------------------------------------------------------------
def test_invalid_or_missing_config_is_named(tmp_path):
    run = _run(tmp_path)
    run.config_path.write_text('{"name": "r",\n "seed": }')
    with pytest.raises(RunDirError) as exc:
        run.read_config()
    assert str(run.config_path) in str(exc.value) and "line 2 column 10" in str(exc.value)
    run.config_path.unlink()
    with pytest.raises(FileNotFoundError, match="is not an rlpop run directory \\(no config.json\\)") as exc:
        run.read_config()  # NotARunDirError: a RunDirError and, for old callers, a FileNotFoundError
    assert isinstance(exc.value, NotARunDirError) and isinstance(exc.value, RunDirError)
    (run.path / "status.json").write_text("{")
    with pytest.raises(RunDirError, match="status.json is not valid JSON"):
        run.read_status()


# -- python -m rlpop.lineage ------------------------------------------------------------------------------------------
def test_lineage_cli_says_one_line_and_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_curves = _run(tmp_path)
    header_only = _run(tmp_path)
    (header_only.path / "curves.csv").write_text(",".join(CURVE_FIELDS) + "\n")
    cases = {tmp_path / "missing": "no such directory", empty: "not an rlpop run directory",
             no_curves.path: "no Q evaluations yet", header_only.path: "no Q evaluations yet"}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {d: subprocess.Popen([sys.executable, "-m", "rlpop.lineage", str(d)], cwd=ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for d in cases}
    for d, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (d, err)
        assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(d) in err and cases[d] in err


def test_a_run_directorys_experiment_reads_its_siblings_where_the_original_lies(tmp_path):
    """experiments/hopper_fire.py and others read a sibling with Path(__file__).with_name(...): --resume and
    replay load the run directory's copy, whose siblings are in the folder the run was started from."""
    import json

    from rlpop.run import load_experiment

    src = tmp_path / "my experiments"
    src.mkdir()
    (src / "steps.txt").write_text("4096")
    exp = src / "sibling_exp.py"
    exp.write_text((ROOT / "tests" / "data" / "tiny_pbt.py").read_text().replace(
        "total_steps=2048", "total_steps=int(__import__('pathlib').Path(__file__).with_name('steps.txt').read_text())"))
    run_dir = tmp_path / "runs" / "sibling-1"
    run_dir.mkdir(parents=True)
    (run_dir / "experiment.py").write_text(exp.read_text())
    (run_dir / "config.json").write_text(json.dumps({"experiment_dir": str(src), "experiment_file": str(exp)}))
    assert load_experiment(exp).total_steps == 4096
    assert load_experiment(run_dir / "experiment.py").total_steps == 4096
