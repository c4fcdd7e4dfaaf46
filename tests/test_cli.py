"""python -m rlpop.run end to end, and its errors for bad input."""
import csv
import json

import pytest

from conftest import DATA, ROOT, run_cli
from rlpop.experiment import Agent, Experiment, PBT
from rlpop.hparams import LogUniform


def test_single_agent_run_end_to_end(tmp_path):
    res = run_cli(str(DATA / "tiny_ppo.py"), "--set", "total_steps=2e3", "--runs-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    (run,) = list(tmp_path.iterdir())
    assert run.name.startswith("tiny-")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["total_steps"] == 2000 and cfg["overrides"] == {"total_steps": "2e3"}
    rows = list(csv.DictReader((run / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [512, 1024, 1536, 2048]
    assert all(r["q"] != "" for r in rows)
    metrics = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(metrics) == 8 and "approx_kl" in metrics[0]  # one row per PPO update (256 steps)
    assert [int(m["step"]) for m in metrics] == list(range(256, 2049, 256))
    assert list((run / "tb" / "w000").glob("events.out.tfevents.*"))  # one TensorBoard run per worker
    assert json.loads((run / "status.json").read_text())["finished"] is True
    assert "SPS" in res.stdout and "best Q" in res.stdout
    # resuming a finished run does nothing, and says so
    again = run_cli("--resume", str(run))
    assert again.returncode == 0 and "already finished" in again.stdout


def test_resume_honours_dry_run_and_a_backend_given_with_it(tmp_path):
    """--resume --dry-run prints the recorded run's plan and trains nothing; --resume --backend X resumes on X
    and says so (a member's run does not depend on the backend)."""
    res = run_cli(str(DATA / "tiny_ppo.py"), "--set", "total_steps=2e3", "--runs-dir", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr
    (run,) = list(tmp_path.iterdir())
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "finished": False}))  # as if it had been killed
    before = (run / "curves.csv").read_text()
    dry = run_cli("--resume", str(run), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"at round {status['round']} of 4" in dry.stdout and "continues it" in dry.stdout
    assert (run / "curves.csv").read_text() == before  # nothing trained
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "backend": "ray"}))  # as if started on Ray
    again = run_cli("--resume", str(run), "--backend", "inline", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "note: resuming on the inline backend; the run started on ray" in again.stderr


@pytest.mark.parametrize("args, needle", [
    (["no/such/file.py"], "not found"),
    ([str(DATA / "no_experiment.py")], "defines no `experiment`"),
    ([str(DATA / "tiny_ppo.py"), "--set", "total_stepz=5"], "no field 'total_stepz'"),
    ([str(DATA / "tiny_ppo.py"), "--set", "total_steps=abc"], "expected a value of type int"),
    ([str(DATA / "tiny_ppo.py"), "--set", "env=Hoper-v5"], "Did you mean: Hopper-v5"),
    ([str(DATA / "tiny_ppo.py"), "--set", "agent.hparams.lrr=1"], "unknown hyperparameter(s) ['lrr']"),
    (["--resume", "/nonexistent/run"], "not an rlpop run directory"),
])
def test_bad_input_gives_a_clear_error(args, needle, tmp_path, capsys):
    from rlpop.run import main

    rc = main([*args, "--runs-dir", str(tmp_path / "runs")])  # in-process: the same code, no second import
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_bad_input_through_the_real_cli(tmp_path):
    res = run_cli(str(DATA / "tiny_ppo.py"), "--set", "total_steps=abc", "--runs-dir", str(tmp_path), timeout=120)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "expected a value of type int" in res.stderr and "Traceback" not in res.stderr


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="eval_steps=5000 is larger than total_steps=1000"):
        Experiment(name="x", env="Corridor-v0", total_steps=1000, eval_steps=5000)
    with pytest.raises(ValueError, match="cannot change while learner"):
        Experiment(name="x", env="Corridor-v0", space={"hidden": LogUniform(1, 2)})
    with pytest.raises(ValueError, match="lo=0.01 >= hi=0.001"):
        Experiment(name="x", env="Corridor-v0", space={"lr": LogUniform(1e-2, 1e-3)})
    with pytest.raises(ValueError, match="ready_steps=5000 is larger than total_steps"):
        Experiment(name="x", env="Corridor-v0", total_steps=1000, eval_steps=500,
                   space={"lr": LogUniform(1e-4, 1e-3)}, strategy=PBT(population=4, ready_steps=5000))
    with pytest.raises(ValueError, match="strategy.population=0"):
        Experiment(name="x", env="Corridor-v0", space={"lr": LogUniform(1e-4, 1e-3)}, strategy=PBT(population=0))
    with pytest.raises(ValueError, match="quantile"):
        Experiment(name="x", env="Corridor-v0", space={"lr": LogUniform(1e-4, 1e-3)},
                   strategy=PBT(population=4, quantile=0.9))
    with pytest.raises(ValueError, match="agent.learner='sac'"):
        Experiment(name="x", env="Corridor-v0", agent=Agent("sac"))


def test_set_overrides_reach_nested_and_frozen_fields():
    exp = Experiment(name="x", env="Corridor-v0", space={"lr": LogUniform(1e-4, 1e-3)},
                     strategy=PBT(population=4, ready_steps=20_000), total_steps=100_000)
    new = exp.with_overrides({"strategy.population": "6", "space.lr.hi": "2e-3", "agent.hparams.epochs": "3"})
    assert new.strategy.population == 6
    assert new.hparam_space().params["lr"].hi == 2e-3
    assert new.agent.hparams == {"epochs": 3}
    assert exp.strategy.population == 4 and exp.agent.hparams == {}  # the original is untouched
