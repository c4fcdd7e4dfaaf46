"""Failure modes, round 2 (issue 27 items 4-5): each class ends in one line naming the field or the cause and the
fix, the README's exit code, no traceback, and no run directory for bad input. The slow cases (Ray orphans after
kill -9 and Ctrl-C) are in benchmarks/failure_sweep.py."""
import json
import os
import shutil

import pytest

from conftest import DATA
from test_failures import cli, run_own_learner

ENV = '''
import gymnasium as gym
import numpy as np
from rlpop.envs import register_env


class {name}(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, ok_resets=1_000_000, obs_dim=2, step_obs_dim=2):
        self.ok, self.n, self.dim, self.step_dim = ok_resets, 0, obs_dim, step_obs_dim

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n += 1
        if self.n > self.ok:
            raise RuntimeError("boom: reset failed on purpose")
        return np.zeros(self.dim, np.float32), {{}}

    def step(self, action):
        return np.zeros(self.step_dim, np.float32), 1.0, True, False, {{}}


register_env("{name}-v0", {name}, max_episode_steps=20)
'''

EXPERIMENT = '''
import {module}  # noqa: F401 -- registers the env
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="{module}", env="{name}-v0", env_kwargs={kwargs!r},
    agent=Agent("ppo", hparams={{"rollout_steps": 32, "envs_per_actor": 2, "epochs": 1, "minibatch_size": 16}}),
    space={{"lr": LogUniform(1e-4, 1e-3)}}, strategy=PBT(population=2, ready_steps=64),
    total_steps=128, eval_steps=32)
'''


def env_experiment(tmp_path, module: str, **kwargs):
    """An experiment over a 2-d env of ``module`` (its own name: modules are cached per process) built with
    ``kwargs``; returns (experiment file, runs dir)."""
    name = module.title().replace("_", "")
    (tmp_path / f"{module}.py").write_text(ENV.format(name=name))
    exp = tmp_path / f"{module}_exp.py"
    exp.write_text(EXPERIMENT.format(module=module, name=name, kwargs=kwargs))
    return str(exp), tmp_path / "runs"


def one_error_line(err: str, needle: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], err
    return errors[0]


# ----------------------------------------------------------------------------- envs
@pytest.mark.parametrize("module, kwargs, needle", [
    ("reset_raises", {"ok_resets": 0}, "reset() raised RuntimeError: boom: reset failed on purpose; fix the env"),
    ("obs_shape", {"obs_dim": 3}, "reset() returned an observation of shape (3,), but the env declares"),
    ("step_obs_shape", {"step_obs_dim": 5}, "step() returned an observation of shape (5,), but the env declares"),
], ids=["reset-raises", "reset-obs", "step-obs"])
def test_an_env_that_cannot_reset_or_contradicts_its_space_is_bad_input(module, kwargs, needle, tmp_path, capsys):
    exp, runs = env_experiment(tmp_path, module, **kwargs)
    for extra in ([], ["--dry-run"]):  # a dry run checks it too
        rc, out, err = cli(capsys, exp, "--runs-dir", str(runs), "--quiet", *extra)
        assert rc == 2, out + err
        one_error_line(err, needle)
        assert err.count("\n") == 1 and not runs.exists() and "experiment " not in out  # no plan printed


def test_a_member_whose_rebuild_raises_is_dropped_in_one_line(tmp_path, capsys):
    """Each env resets once (the spec check's env too), so training fails and so does the rebuild that follows:
    it was a 52-74 line traceback from the member-rebuild path."""
    exp, runs = env_experiment(tmp_path, "reset_once", ok_resets=1)
    rc, out, err = cli(capsys, exp, "--runs-dir", str(runs), "--quiet")
    assert rc == 1, out + err
    assert "Traceback" not in err and "its rebuild from the last checkpoint failed too (RuntimeError: boom" in err
    one_error_line(err, "every member failed and was dropped")
    assert "next:" not in out  # nothing to evaluate


def test_dry_run_with_wrong_env_kwargs_says_one_line_and_no_plan(capsys):
    rc, out, err = cli(capsys, str(DATA / "tiny_ppo.py"), "--set", "env_kwargs.length=oops", "--dry-run")
    assert rc == 2 and out == "", out + err
    one_error_line(err, "env='Corridor-v0' with env_kwargs={'length': 'oops'} cannot be built")


# ----------------------------------------------------------------------------- learners
PARTIAL = '''
class NoStateMethods:
    """train and hparams only: no get_state / set_state / close."""

    mutable_hparams = frozenset({"lr"})
    needs_env = False

    def __init__(self, env_id, hparams, seed, env_kwargs=None):
        self.hp = dict(hparams)

    def train(self, steps):
        raise AssertionError("never trained: refused at spec time")

    def get_hparams(self):
        return dict(self.hp)

    def set_hparams(self, hparams):
        self.hp.update(hparams)
'''

RETURNS_NONE = '''
from rlpop.toy import NoisyQuadratic


class ReturnsNone(NoisyQuadratic):
    def train(self, steps):
        super().train(steps)
'''

RAISES_LATER = '''
from rlpop.toy import NoisyQuadratic


class ExploreFails(NoisyQuadratic):
    """Trains, but a new lr (PBT's explore) raises: an error outside any worker's train()."""

    def set_hparams(self, hparams):
        if getattr(self, "_set", False) and hparams.get("lr") != self.get_hparams()["lr"]:
            raise ValueError("cannot take a new lr on purpose")
        self._set = True
        super().set_hparams(hparams)
'''

NOT_BUILT = '''
from rlpop.toy import NoisyQuadratic


class NeverBuilds(NoisyQuadratic):
    def __init__(self, *a, **k):
        raise RuntimeError("this learner cannot be built on purpose")
'''


def test_a_learner_missing_protocol_methods_is_refused_at_spec_time(tmp_path, capsys):
    rc, out, err = run_own_learner(tmp_path, capsys, "no_state_mod", PARTIAL, "NoStateMethods",
                                   "PBT(population=2, ready_steps=20)", 40)
    assert rc == 2, out + err
    line = one_error_line(err, "agent.learner='no_state_mod:NoStateMethods' lacks get_state, set_state, close")
    assert "rlpop.agents.base.Learner" in line and not (tmp_path / "runs").exists()


def test_a_learner_whose_train_returns_none_fails_naming_train_result(tmp_path, capsys):
    rc, out, err = run_own_learner(tmp_path, capsys, "none_mod", RETURNS_NONE, "ReturnsNone",
                                   "PBT(population=2, ready_steps=20)", 40)
    assert rc == 1, out + err
    one_error_line(err, "ReturnsNone.train() returned NoneType, not a TrainResult; return "
                        "rlpop.agents.base.TrainResult(")


def test_an_error_outside_the_workers_stops_the_run_in_one_line_with_the_traceback_kept(tmp_path, capsys):
    rc, out, err = run_own_learner(tmp_path, capsys, "explore_mod", RAISES_LATER, "ExploreFails",
                                   "PBT(population=4, ready_steps=20)", 100)
    assert rc == 1, out + err
    line = one_error_line(err, "error: the run stopped (last round recorded:")
    (run,) = (tmp_path / "runs").iterdir()
    assert "ValueError: cannot take a new lr on purpose" in line and f"resume with `rlpop run --resume {run}`" in line
    assert "Traceback" in (run / "error.log").read_text()


def test_workers_that_cannot_start_leave_no_run_directory(tmp_path, capsys):
    rc, out, err = run_own_learner(tmp_path, capsys, "never_mod", NOT_BUILT, "NeverBuilds",
                                   "PBT(population=2, ready_steps=20)", 40)
    assert rc == 1, out + err
    one_error_line(err, "the workers could not start: RuntimeError: this learner cannot be built on purpose "
                        "(nothing trained; no run directory kept)")
    assert list((tmp_path / "runs").iterdir()) == []


# ----------------------------------------------------------------------------- spec
TOY = str(DATA.parent.parent / "experiments" / "toy_fire.py")


@pytest.mark.parametrize("sets, needle", [
    (["strategy.evaluators=5", "strategy.subpop_size=2"],
     "strategy.evaluators=5: an evaluator evaluates one parent member at a time and P2 holds 2, so 3 would never "
     "run; set evaluators <= 2"),
    (["strategy.ready_steps=-512"], "strategy.ready_steps=-512 must be a whole number of actor steps >= 1"),
])
def test_spec_errors_of_round_two(sets, needle, tmp_path, capsys):
    args = [TOY, "--runs-dir", str(tmp_path / "runs")]
    for s in sets:
        args += ["--set", s]
    rc, out, err = cli(capsys, *args)
    assert rc == 2 and err.count("\n") == 1, out + err
    one_error_line(err, needle)
    assert "lower eval_steps" not in err and not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- run directories
def test_runs_dir_that_is_a_file_or_read_only_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a file"
    a_file.write_text("not a folder")
    for runs in (a_file, a_file / "sub"):
        rc, out, err = cli(capsys, TOY, "--runs-dir", str(runs), "--quiet")
        assert rc == 2, out + err
        one_error_line(err, f"--runs-dir {runs}: {a_file} is a file, not a folder; give another --runs-dir")
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
    else:  # root writes anywhere: the file system's answer for this folder, as a read-only mount gives it
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(ro) else real(p, mode, **k))
    rc, out, err = cli(capsys, TOY, "--runs-dir", str(ro / "runs"), "--quiet")
    assert rc == 2, out + err
    one_error_line(err, f"--runs-dir {ro / 'runs'}: {ro} is not writable by this user; give a folder you can write")
    assert list(ro.iterdir()) == []


def toy_run(tmp_path, capsys, runs=None):
    """A finished toy PBT run (seconds); returns its run directory."""
    runs = runs or tmp_path / "runs"
    rc, out, err = cli(capsys, TOY, "--runs-dir", str(runs), "--quiet", "--set", "total_steps=300")
    assert rc == 0, out + err
    (run,) = runs.iterdir()
    return run, out


def test_resume_without_experiment_py_says_which_file_to_copy_back(tmp_path, capsys):
    run, _ = toy_run(tmp_path, capsys)
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "finished": False}))
    (run / "experiment.py").unlink()
    rc, out, err = cli(capsys, "--resume", str(run))
    assert rc == 2, out + err
    one_error_line(err, f"{run}: experiment.py is missing, so the run cannot be rebuilt; copy the file it was "
                        f"started from ({TOY}) to {run / 'experiment.py'}")
    (run / "checkpoints").rename(run / "ckpts")
    (run / "checkpoints").write_text("a file where a folder should be")
    shutil.copy(TOY, run / "experiment.py")
    rc, out, err = cli(capsys, "--resume", str(run))
    assert rc == 2, out + err
    one_error_line(err, "checkpoints is a file where the run keeps a folder; move it away")


def test_printed_commands_are_shell_quoted(tmp_path, capsys):
    import shlex

    run, out = toy_run(tmp_path, capsys, tmp_path / "my runs")
    nxt = [ln for ln in out.splitlines() if "rlpop evaluate" in ln]
    assert nxt and f"rlpop evaluate {shlex.quote(str(run))} " in nxt[0] and "'" in nxt[0], out
    assert shlex.split(nxt[0].split("next: ")[1].split("(")[0]) == ["rlpop", "evaluate", str(run)]


def test_address_auto_without_a_cluster_fails_before_the_run_directory(tmp_path, capsys, monkeypatch):
    """Ray's own discovery, told there is no cluster on this machine (others' test clusters may run here)."""
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: None)
    rc, out, err = cli(capsys, TOY, "--address", "auto", "--runs-dir", str(tmp_path / "runs"))
    assert rc == 2, out + err
    one_error_line(err, "--address auto: no Ray cluster runs on this machine; start one with `ray start --head`")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- partial curves
@pytest.mark.parametrize("cut", ["mid-file", "rows"])
def test_readers_say_when_curves_csv_is_partial_and_summary_does_not_call_it_finished(cut, tmp_path, capsys):
    from rlpop.runs import _SAID

    run, _ = toy_run(tmp_path, capsys)
    path = run / "curves.csv"
    data = path.read_bytes()
    if cut == "mid-file":
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_bytes(b"".join(data.splitlines(True)[:-4]))
    from rlpop import lineage, plot, summary

    for main, args in ((summary.main, [str(run), "--out", str(tmp_path / "s.csv")]), (lineage.main, [str(run)]),
                       (plot.main, [str(run)])):
        _SAID.clear()
        assert main(args) == 0
        err = capsys.readouterr().err
        warn = [ln for ln in err.splitlines() if ln.startswith("warning:")]
        assert len(warn) == 1 and f"{path} is partial (" in warn[0], err
        if cut == "mid-file":
            assert "its last row is cut" in warn[0] and "but the run recorded round" in warn[0], warn
        else:  # the last round lost some of its rows
            assert "missing from rounds the members trained in" in warn[0] and "cut" not in warn[0], warn
    import pandas as pd

    assert not pd.read_csv(tmp_path / "s.csv")["finished"].iloc[0]


def test_a_whole_curves_csv_says_nothing(tmp_path, capsys):
    from rlpop import summary
    from rlpop.runs import _SAID

    run, _ = toy_run(tmp_path, capsys)
    _SAID.clear()
    assert summary.main([str(run), "--out", str(tmp_path / "s.csv")]) == 0
    assert "warning" not in capsys.readouterr().err
    import pandas as pd

    assert pd.read_csv(tmp_path / "s.csv")["finished"].iloc[0]


# ----------------------------------------------------------------------------- signals
def test_sigterm_stops_the_run_as_ctrl_c_does(tmp_path):
    """SIGTERM to the driver (a scheduler ending a job): one line naming the directory to resume, exit 143, the
    lock released. (On Ray, the driver's own handler printed a C++ stack dump and exited 15 or -6.)"""
    import signal

    from conftest import start_gated_run

    proc, runs, gate, _ = start_gated_run(DATA / "tiny_pbt.py", tmp_path, at=300)
    try:
        os.kill(proc.pid, signal.SIGTERM)  # blocked in an env step of round 3
        out, _ = proc.communicate(timeout=120)
    finally:
        (gate / "release").touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (run,) = runs.glob("tiny_pbt-*")
    assert proc.returncode == 143, out[-3000:]
    assert f"terminated (SIGTERM): workers and actor processes stopped; resume with `rlpop run --resume {run}`" in out
    assert "Traceback" not in out
    assert not (run / "lock").exists()  # released on the way out, as on Ctrl-C: a resume needs no take-over


DRIVER = '''
import subprocess, sys, time
import psutil
from rlpop import reaper

before = reaper.children()
root = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
while not psutil.Process(root.pid).children():  # its child is there: a tree, as raylet and its agents
    time.sleep(0.05)
r = reaper.start(reaper.children() - before)
print(root.pid, r.proc.pid, flush=True)
time.sleep(600)
'''


def test_the_reaper_ends_what_the_driver_started_when_the_driver_is_killed(tmp_path):
    """rlpop.reaper, without Ray: a driver starts a process tree (as ray.init starts its cluster) and the watcher;
    kill -9 of the driver ends the tree (Ray's agents outlived it 60-80 s; the sweep runs the Ray case)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    (tmp_path / "driver.py").write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py")], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        root_pid, reaper_pid = map(int, driver.stdout.readline().split())
        tree = [psutil.Process(root_pid), *psutil.Process(root_pid).children(recursive=True)]
        watcher = psutil.Process(reaper_pid)
        assert len(tree) == 2
        driver.kill()
        driver.wait()
        _, alive = psutil.wait_procs(tree, timeout=30)  # a bound on a broken reaper only
        assert not alive, alive
        _, alive = psutil.wait_procs([watcher], timeout=30)  # and the watcher is gone too
        assert not alive
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        for p in psutil.process_iter():
            try:
                if p.ppid() == 1 and "time.sleep(600)" in " ".join(p.cmdline()) and p.create_time() > time.time() - 300:
                    p.kill()
            except psutil.Error:
                pass
