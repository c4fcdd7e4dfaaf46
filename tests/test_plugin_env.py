"""An env defined in a plain module beside an experiment file (not installed) and registered by
``register_env`` in that file reaches every process that builds an env: spawned env processes, and Ray
workers (the batched engine, PPO's only one)."""
import pandas as pd
import pytest

from conftest import run_cli

ENV_MODULE = '''
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class PlainEnv(CartPoleEnv):
    """CartPole under another name, in a module that is not installed."""
'''

EXPERIMENT = '''
from rlpop.envs import register_env

register_env("PlainCartPole-v0", "plain_env_mod:PlainEnv", max_episode_steps=200)

from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="plug", env="PlainCartPole-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 256, "num_actors": 2, "envs_per_actor": 1, "epochs": 2}),
    space={"lr": LogUniform(1e-4, 1e-3)}, strategy=PBT(population=2, ready_steps=512),
    total_steps=512, eval_steps=256)
'''


@pytest.mark.parametrize("where", [["--backend", "inline"], ["ray"]], ids=["inline-batched", "ray-batched"])
def test_env_registered_in_the_experiment_file_reaches_every_process(where, tmp_path, request):
    (tmp_path / "plain_env_mod.py").write_text(ENV_MODULE)
    exp = tmp_path / "plug.py"
    exp.write_text(EXPERIMENT)
    if where[0] == "ray":  # join the session's cluster: its workers never saw the experiment file
        where = ["--address", request.getfixturevalue("ray_cluster").test_address, *where[1:]]
    res = run_cli(str(exp), *where, "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = list((tmp_path / "runs").iterdir())
    curves = pd.read_csv(run / "curves.csv")
    assert sorted(curves.worker.unique()) == [0, 1] and curves.step.max() == 512


LOCAL = '''
import gymnasium as gym
from rlpop.envs import register_env

register_env("LocalCartPole-v0", lambda **kw: gym.make("CartPole-v1"))

from rlpop.experiment import Agent, Experiment, Single

experiment = Experiment(name="local", env="LocalCartPole-v0", agent=Agent("ppo", hparams={{"num_actors": {n}}}),
                        strategy=Single(), total_steps=4096, eval_steps=2048, backend="{backend}")
'''


@pytest.mark.parametrize("backend, n", [("ray", 0), ("inline", 2)])
def test_an_env_other_processes_cannot_import_fails_at_spec_time(backend, n, tmp_path):
    exp = tmp_path / "local.py"
    exp.write_text(LOCAL.format(backend=backend, n=n))
    res = run_cli(str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "env 'LocalCartPole-v0' is registered with <lambda>, which other processes cannot import" in res.stderr
    assert res.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


DRIVER_ONLY = '''
import os
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class DriverOnly(CartPoleEnv):
    def __init__(self, **kw):
        if os.environ.get("RLPOP_TEST_DRIVER") != "1":  # set for the CLI only; Ray workers never see it
            raise RuntimeError("DriverOnly cannot be built outside the driver process")
        super().__init__(**kw)
'''


def test_workers_that_cannot_build_their_env_fail_the_run_once_in_one_line(tmp_path, request):
    """The env builds in the driver (spec-time check passes) but not in any worker: one error line, exit 1,
    not one traceback per worker."""
    (tmp_path / "driver_only.py").write_text(DRIVER_ONLY)
    exp = tmp_path / "plug.py"
    exp.write_text(EXPERIMENT.replace("plain_env_mod:PlainEnv", "driver_only:DriverOnly"))
    addr = request.getfixturevalue("ray_cluster").test_address
    res = run_cli(str(exp), "--address", addr, "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=240,
                  env={"RLPOP_TEST_DRIVER": "1"})
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: the workers could not start: RuntimeError: DriverOnly cannot be built outside the "
                      "driver process (nothing trained; no run directory kept)"], res.stderr[-3000:]
    assert list((tmp_path / "runs").iterdir()) == []
    assert "Traceback" not in res.stderr


def test_a_joined_cluster_gets_the_experiment_folder_shipped(tmp_path, monkeypatch):
    """Other nodes do not share the driver's disk: the experiment's folder (config.json's experiment_dir, which the
    CLI gives the backend) travels as the workers' working_dir."""
    from rlpop.backends.ray_backend import runtime_env
    from rlpop.run import load_experiment, run_config

    (tmp_path / "plain_env_mod.py").write_text(ENV_MODULE)
    (tmp_path / "plug.py").write_text(EXPERIMENT)
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.delenv("RLPOP_ENV_REGISTRATIONS", raising=False)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    exp = load_experiment(tmp_path / "plug.py")
    folder = run_config(exp, "ray", "10.0.0.5:6379", {}, tmp_path / "plug.py")["experiment_dir"]
    joined, embedded = runtime_env("10.0.0.5:6379", folder), runtime_env(None, folder)
    assert joined["working_dir"] == str(tmp_path) and "runs/" in joined["excludes"]
    assert "working_dir" not in embedded  # one machine: PYTHONPATH reaches the folder
    for env in (joined, embedded):
        assert str(tmp_path) in env["env_vars"]["PYTHONPATH"].split(":")
        assert "PlainCartPole-v0" in env["env_vars"]["RLPOP_ENV_REGISTRATIONS"]


def test_a_plugin_run_resumes_and_replays_from_anywhere(tmp_path):
    """The run directory's copy of the experiment imports the env module from the folder the run was started from
    (config.json's experiment_dir): --resume and replay work from another folder, without it on the path."""
    import json

    src = tmp_path / "project"
    src.mkdir()
    (src / "plain_env_mod.py").write_text(ENV_MODULE)
    (src / "plug.py").write_text(EXPERIMENT.replace('"num_actors": 2, ', ''))
    res = run_cli(str(src / "plug.py"), "--runs-dir", str(tmp_path / "runs"), "--quiet", cwd=src)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["experiment_dir"] == str(src)
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "finished": False}))  # as if it had been killed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_cli("--resume", str(run), "--quiet", cwd=elsewhere)
    assert res.returncode == 0 and "No module named" not in res.stderr, res.stderr[-2000:]
    import subprocess
    import sys

    rep = subprocess.run([sys.executable, "-m", "rlpop.replay", str(run), "--runs-dir", str(tmp_path / "replays"),
                          "--quiet"], cwd=elsewhere, capture_output=True, text=True, timeout=240)
    assert rep.returncode == 0 and "No module named" not in rep.stderr, rep.stderr[-2000:]
    (replay,) = (tmp_path / "replays").iterdir()
    assert json.loads((replay / "config.json").read_text())["experiment_dir"] == str(src)
