"""ASHA, async HyperBand with Optuna's TPE, and PB2 end to end through the CLI (the toy learner: seconds)."""
import json
import textwrap

import pandas as pd
import pytest

from conftest import run_cli

SPECS = {
    "asha": "ASHA(population=4, max_t=120, grace_period=20, reduction_factor=2)",
    "hyperband_tpe": "HyperBand(population=4, max_t=120, grace_period=20, reduction_factor=2, brackets=2, "
                     "search='tpe')",
    "pb2": "PB2(population=4, ready_steps=40)",
}


def write_experiment(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(f"""
        from rlpop.experiment import ASHA, PB2, Agent, Experiment, HyperBand
        from rlpop.hparams import LogUniform

        experiment = Experiment(name="{name}", env=None, agent=Agent("toy"),
                                space={{"lr": LogUniform(0.01, 1.0, bounds=(1e-3, 1.5))}},
                                strategy={SPECS[name]}, total_steps=240, eval_steps=20, seed=0)
    """))
    return path


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_tuner_runs_through_the_cli(tmp_path, name):
    exp = write_experiment(tmp_path, name)
    if name == "hyperband_tpe":  # one dry run shows a strategy's own plan (each plan() is unit-tested)
        dry = run_cli(str(exp), "--dry-run", "--runs-dir", str(tmp_path / "dry"))
        assert dry.returncode == 0, dry.stderr
        assert "strategy:" in dry.stdout and "bracket" in dry.stdout
    res = run_cli(str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = list((tmp_path / "runs").iterdir())
    curves = pd.read_csv(run / "curves.csv")
    decisions = [json.loads(ln) for ln in (run / "decisions.jsonl").read_text().splitlines()]
    kinds = {d["kind"] for d in decisions}
    if name == "pb2":
        assert {"exploit", "explore"} <= kinds
        assert any("PB2 UCB" in str(d.get("changes")) for d in decisions if d["kind"] == "explore")
        assert curves.groupby("worker").step.max().eq(240).all()
    else:
        # rungs cut trials and their slots start new configurations; every slot spends its whole budget
        assert "restart_trial" in kinds
        restarts = [d for d in decisions if d["kind"] == "restart_trial"]
        assert any("cut at rung" in d["reason"] for d in restarts)
        steps = curves.groupby("worker").step.apply(list)
        for w, s in steps.items():  # a new trial's curve starts again; the slot's steps add up to the budget
            trials = [[]]
            for x in s:
                if trials[-1] and x <= trials[-1][-1]:
                    trials.append([])
                trials[-1].append(x)
            assert sum(t[-1] for t in trials) == 240, (w, s)
        n_trials = len(restarts) + 4
        assert len({json.dumps(d["hparams"], sort_keys=True) for d in restarts}) == len(restarts) and n_trials > 4
    status = json.loads((run / "status.json").read_text())
    assert status["finished"] is True and status["counts"].get("restart_trial", 0) == sum(
        d["kind"] == "restart_trial" for d in decisions)


def test_a_bad_sampler_name_fails_before_the_run_directory(tmp_path):
    exp = write_experiment(tmp_path, "asha")
    res = run_cli(str(exp), "--set", "strategy.search=bayes", "--runs-dir", str(tmp_path / "runs"))
    assert res.returncode == 2
    assert "strategy.search='bayes'" in res.stderr and "'tpe'" in res.stderr
    assert not (tmp_path / "runs").exists()
