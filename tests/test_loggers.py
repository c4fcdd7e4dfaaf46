"""--log wandb / mlflow / module:function attach listeners from the CLI (W&B offline, MLflow's local file store:
no network), and the Python route writes the same run directory as the CLI."""
import csv
import json
import sys
import textwrap

import pytest

from conftest import ROOT
from rlpop.run import main

TOY = ROOT / "experiments" / "toy_pbt.py"
SMALL = ["--quiet", "--set", "total_steps=200", "--set", "strategy.population=2", "--set",
         "strategy.ready_steps=100"]


def q_points(run):
    rows = list(csv.DictReader((run / "curves.csv").open()))
    return {w: [(int(r["step"]), float(r["q"])) for r in rows if int(r["worker"]) == w] for w in (0, 1)}


def only_run(root):
    (run,) = list(root.iterdir())
    return run


@pytest.mark.parametrize("spec, needle", [
    ("wandbb", "--log 'wandbb': give wandb, mlflow or module:function"),
    ("no_such_module_rlpop:fn", "--log no_such_module_rlpop:fn: cannot load it (ModuleNotFoundError"),
    ("json:no_such_fn", "--log json:no_such_fn: cannot load it (AttributeError"),
    ("json:__doc__", "--log json:__doc__: __doc__ is a str, not a function taking an event"),
])
def test_bad_log_fails_before_the_run_dir(spec, needle, tmp_path, capsys):
    rc = main([str(TOY), *SMALL, "--log", spec, "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_missing_logger_extra(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)
    rc = main([str(TOY), *SMALL, "--log", name, "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.endswith(f"is not installed: pip install 'rlpop[{name}]'\n") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_log_module_function(tmp_path, monkeypatch):
    """A listener beside the experiment file, named on the command line, hears every round."""
    (tmp_path / "exp").mkdir()
    exp = tmp_path / "exp" / "toy.py"
    exp.write_text(TOY.read_text())
    (tmp_path / "exp" / "my_listener.py").write_text(textwrap.dedent(f"""
        from rlpop.events import RoundFinished

        def to_file(event):
            if isinstance(event, RoundFinished):
                with open({str(tmp_path / 'heard.txt')!r}, "a") as f:
                    f.write(f"{{event.round}} {{event.best_q}}\\n")
        """))
    monkeypatch.setattr(sys, "path", list(sys.path))  # rlpop.run puts the experiment's folder on it: undone after
    assert main([str(exp), *SMALL, "--log", "my_listener:to_file", "--runs-dir", str(tmp_path / "runs")]) == 0
    heard = (tmp_path / "heard.txt").read_text().splitlines()
    assert [int(x.split()[0]) for x in heard] == list(range(1, 11))  # 200 steps, Q every 20: 10 rounds
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "config.json").read_text())["log"] == ["my_listener:to_file"]


def test_log_mlflow_local_file_store(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert main([str(TOY), *SMALL, "--log", "mlflow", "--runs-dir", str(tmp_path / "runs")]) == 0
    run = only_run(tmp_path / "runs")
    run_id = json.loads((run / "loggers.json").read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=f"file:{store}")
    info = client.get_run(run_id)
    assert info.info.status == "FINISHED" and info.info.run_name == run.name
    assert info.data.params["strategy.type"] == "PBT" and info.data.params["name"] == "toy_pbt"
    for w, points in q_points(run).items():
        hist = sorted((m.step, m.value) for m in client.get_metric_history(run_id, f"w{w:03d}/Q"))
        assert hist == pytest.approx(points)
        assert client.get_metric_history(run_id, f"w{w:03d}/lr")
    assert client.get_metric_history(run_id, "population/best_Q")


def test_log_mlflow_unusable_store_fails_at_spec_time(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # MLflow 3 refuses its file store unless allowed
    rc = main([str(TOY), *SMALL, "--log", "mlflow", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --log mlflow: MLflow cannot use its tracking store file:"), err
    assert "set MLFLOW_TRACKING_URI" in err and err.count("\n") == 1 and not (tmp_path / "runs").exists()


def wandb_records(raw: bytes):
    """The records of a .wandb file: W&B's LevelDB-style log (a 7-byte header ':W&B', 0xBEE1, version; 32 KiB
    blocks of records: crc32 (4), length (2), type (1: full, 2: first, 3: middle, 4: last), data)."""
    import struct

    assert raw[:4] == b":W&B", raw[:7]
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        parts += data
        if kind in (1, 4):
            yield parts
            parts = b""


def read_wandb_history(wandb_dir):
    """The history rows of the one offline W&B run under ``wandb_dir``, read from its .wandb file."""
    from wandb.proto import wandb_internal_pb2

    (path,) = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    rows, config = [], {}
    for data in wandb_records(path.read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
        elif kind in ("run", "config"):  # the config comes with the run record (and any later update)
            updates = rec.run.config.update if kind == "run" else rec.config.update
            config.update({i.key: json.loads(i.value_json) for i in updates})
    return rows, config


def test_log_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main([str(TOY), *SMALL, "--log", "wandb", "--runs-dir", str(tmp_path / "runs")]) == 0
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "loggers.json").read_text())["wandb_id"] == run.name
    rows, config = read_wandb_history(tmp_path)
    assert config["name"] == "toy_pbt" and config["strategy"]["type"] == "PBT"
    assert [r["_step"] for r in rows] == list(range(1, 11))
    for w, points in q_points(run).items():
        assert [r[f"w{w:03d}/Q"] for r in rows] == pytest.approx([q for _, q in points])
    assert all("population/best_Q" in r and "w000/lr" in r for r in rows)


def test_python_route_writes_the_cli_run_dir(tmp_path, capsys):
    """execute() on a fresh RunDir writes config.json and a rebuilding experiment.py: --resume, summary, lineage,
    plot and replay work on it as on a CLI run."""
    from rlpop import lineage, plot, summary
    from rlpop.events import CheckpointSaved
    from rlpop.experiment import PBT, Agent, Experiment
    from rlpop.hparams import LogUniform
    from rlpop.run import execute, load_experiment
    from rlpop.store import RunDir

    exp = Experiment(name="py_route", env=None, agent=Agent("toy"),
                     space={"lr": LogUniform(0.05, 1.0, factors=(0.8, 1.25))},
                     strategy=PBT(population=2, ready_steps=100), total_steps=400, eval_steps=20)
    run = RunDir.create(tmp_path / "runs", exp.name)

    def stop(event):  # a killed run: stopped after its second checkpoint
        if isinstance(event, CheckpointSaved) and event.round == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(exp, run, "inline", quiet=True, listeners=[stop])
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["name"] == "py_route" and cfg["route"] == "python" and cfg["backend"] == "inline"
    assert load_experiment(run.path / "experiment.py").to_dict() == exp.to_dict()
    assert main(["--resume", str(run.path), "--quiet"]) == 0  # the CLI continues it
    steps = [int(r["step"]) for r in csv.DictReader((run.path / "curves.csv").open()) if r["worker"] == "0"]
    assert steps == list(range(20, 401, 20))
    capsys.readouterr()
    assert summary.main([str(run.path)]) == 0
    assert lineage.main([str(run.path)]) == 0
    assert plot.main([str(run.path)]) == 0 and list((run.path / "plots").iterdir())
    from rlpop import replay

    assert replay.main([str(run.path), "--runs-dir", str(tmp_path / "replays")]) == 0


def test_log_mlflow_resume_continues_the_same_run(tmp_path, monkeypatch):
    """A Python-route run logging to MLflow, killed after a checkpoint, then resumed by the CLI: one MLflow run,
    KILLED in between, FINISHED at the end, every Q point once."""
    from mlflow import MlflowClient

    from rlpop.events import CheckpointSaved
    from rlpop.run import execute, load_experiment
    from rlpop.store import RunDir

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    exp = load_experiment(TOY).with_overrides({"total_steps": "400", "strategy.population": "2"})
    run = RunDir.create(tmp_path / "runs", exp.name)

    def stop(event):
        if isinstance(event, CheckpointSaved) and event.round == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(exp, run, "inline", quiet=True, listeners=[stop], log=["mlflow"])
    client = MlflowClient(tracking_uri=f"file:{store}")
    run_id = json.loads((run.path / "loggers.json").read_text())["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "KILLED"
    assert main(["--resume", str(run.path), "--quiet"]) == 0  # config.json's log: the same MLflow run
    assert json.loads((run.path / "loggers.json").read_text())["mlflow_run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    steps = sorted({m.step for m in client.get_metric_history(run_id, "w000/Q")})
    assert steps == list(range(20, 401, 20))
