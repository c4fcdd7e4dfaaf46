"""Stalls and orphans (issue 13, parts 4 and 7): an env step that never returns does not hang a run,
and no env process (nor multiprocessing's resource tracker) outlives the CLI, kill -9 included.

The env (tests/data/hang_env.py) hangs forever once the file named by RLPOP_HANG_FLAG exists. That
variable -- a unique path per test -- is inherited by every process of the run, so the run's processes
are found by it (``psutil.Process.environ``) even after the CLI is gone.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import DATA, ROOT, run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process scans use /proc environ")


def write_exp(tmp_path: Path, hparams: dict, timeout: float, extra: str = "", total: int = 256,
              strategy: str = "Single()") -> Path:
    exp = tmp_path / "hang.py"
    hp = {"rollout_steps": 64, "envs_per_actor": 1, "epochs": 1, "minibatch_size": 64, **hparams}
    exp.write_text(
        "from rlpop.experiment import Agent, Experiment, RandomSearch, Single\n"
        f"experiment = Experiment(name='hang', env='hang_env:Hang-v0', agent=Agent('ppo', hparams={hp!r}), "
        f"strategy={strategy}, total_steps={total}, eval_steps=128, worker_timeout_s={timeout}{extra})\n")
    return exp


def hang_env_vars(tmp_path: Path) -> dict:
    flag = tmp_path / "hang.flag"
    flag.write_text("")
    return {"RLPOP_HANG_FLAG": str(flag), "RLPOP_HANG_AFTER": "30",
            "PYTHONPATH": str(DATA) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_processes(flag: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries this test's flag."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE \
                    and p.environ().get("RLPOP_HANG_FLAG") == flag:
                out.append(p)
        except (psutil.Error, OSError):
            pass
    return out


def assert_none_left(flag: str, within: float = 10.0) -> None:
    deadline = time.time() + within
    left = run_processes(flag)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = run_processes(flag)
    assert not left, f"left running: {[(p.pid, ' '.join(p.cmdline())[:120]) for p in left]}"


def decisions(tmp_path: Path) -> str:
    logs = list((tmp_path / "runs").glob("*/decisions.log"))
    return logs[0].read_text() if logs else ""


def finished(tmp_path: Path) -> bool:
    return all(json.loads(p.read_text()).get("finished") for p in (tmp_path / "runs").glob("*/status.json"))


def test_inline_batched_env_process_stall_is_killed_rebuilt_and_reported(tmp_path):
    env = hang_env_vars(tmp_path)
    exp = write_exp(tmp_path, {"num_actors": 1}, 5, strategy="RandomSearch(population=2)")
    r = run_cli(str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet", env=env, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(env["RLPOP_HANG_FLAG"] + ".hung").exists(), "the env never hung"
    log = decisions(tmp_path)
    assert "stalled" in log and "worker_timeout_s=5" in log and "rebuilt from the last checkpoint" in log, log
    assert finished(tmp_path)
    assert_none_left(env["RLPOP_HANG_FLAG"])


def test_inline_in_process_env_stall_ends_the_run_with_one_clear_line(tmp_path):
    env = hang_env_vars(tmp_path)
    exp = write_exp(tmp_path, {"num_actors": 0}, 3)
    r = run_cli(str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet", env=env, timeout=150)
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "stalled in an in-process env step" in ln]
    assert len(lines) == 1, r.stderr
    assert "for 3 s (worker_timeout_s)" in lines[0] and "num_actors>=1" in lines[0] and "--resume" in lines[0]
    assert_none_left(env["RLPOP_HANG_FLAG"])


def test_kill_9_while_an_env_step_hangs_leaves_no_process_behind(tmp_path):
    env = hang_env_vars(tmp_path)
    exp = write_exp(tmp_path, {"num_actors": 1}, 3600, total=10**6)
    proc = subprocess.Popen([sys.executable, "-m", "rlpop.run", str(exp), "--runs-dir", str(tmp_path / "runs"),
                             "--quiet"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hung = Path(env["RLPOP_HANG_FLAG"] + ".hung")
    try:
        deadline = time.time() + 90
        while not hung.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert hung.exists(), "the env never hung"
        children = psutil.Process(proc.pid).children(recursive=True)
        names = [" ".join(c.cmdline()) for c in children]
        assert any("spawn_main" in n for n in names), names  # the env process
        assert any("resource_tracker" in n for n in names), names
        assert int(hung.read_text()) in [c.pid for c in children]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert_none_left(env["RLPOP_HANG_FLAG"], within=5.0)
    # the orphans end when their pipes close (the resource tracker after the env process): wait for those exits
    _, alive = psutil.wait_procs(children, timeout=10.0)
    assert not [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_a_single_runs_env_process_stall_is_killed_rebuilt_and_reported(tmp_path):
    """A single run is a population of one on the batched engine: its env process stalls as a population's does."""
    env = hang_env_vars(tmp_path)
    exp = write_exp(tmp_path, {"num_actors": 1}, 3)
    r = run_cli(str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet", env=env, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(env["RLPOP_HANG_FLAG"] + ".hung").exists(), "the env never hung"
    log = decisions(tmp_path)
    assert "env process 0 for env 'hang_env:Hang-v0' stalled" in log and "worker_timeout_s=3" in log, log
    assert "rebuilt from the last checkpoint" in log, log
    assert finished(tmp_path)
    assert_none_left(env["RLPOP_HANG_FLAG"])


def test_a_child_dies_with_its_parent_without_prctl(tmp_path):
    """The portable fallback (a thread polling getppid) kills a child whose main thread is stuck."""
    code = (
        "import multiprocessing as mp, os, sys, time\n"
        "from rlpop.agents.procs import die_with_parent\n"
        "def child(ppid):\n"
        "    assert die_with_parent(ppid, force_thread=True) == 'thread'\n"
        "    time.sleep(3600)\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('spawn').Process(target=child, args=(os.getpid(),))\n"
        "    p.start(); print(p.pid, flush=True); time.sleep(3600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert psutil.pid_exists(pid)
    finally:
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.time() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE \
            and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
