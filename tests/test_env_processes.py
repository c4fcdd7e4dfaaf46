"""Env processes (a batched learner's ``num_actors``): data flows, errors surface with env id + traceback,
nothing is orphaned."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from rlpop.agents.envbank import BankError, ProcBank

DATA = Path(__file__).parent / "data"


def env_children() -> set[int]:
    """Pids of this process's live spawned children (env processes; not multiprocessing's resource tracker)."""
    pids = set()
    for c in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE:
                pids.add(c.pid)
        except psutil.Error:  # exited meanwhile
            pass
    return pids


def test_two_env_processes_step_every_members_envs_and_close():
    before = env_children()
    bank = ProcBank("Pendulum-v1", {}, seeds=[0, 1], num_envs=6, num_actors=2)
    pids = env_children() - before
    assert len(pids) == 2  # one process per num_actors, each with 3 envs of both members
    try:
        obs = bank.observe([0, 1])
        assert obs.shape == (2, 6, 3)
        zero = np.zeros((2, 6, 1), np.float32)
        steps = [bank.step([0, 1], zero) for _ in range(201)]
        assert steps[0].obs.shape == (2, 6, 3) and steps[0].reward.shape == (2, 6)
        assert steps[199].truncated.all() and not any(s.terminated.any() for s in steps)  # 200-step time limit
        # the true final observation is kept where an episode ended; the next one starts a new episode
        assert not np.allclose(steps[199].next_obs, steps[199].obs)
        assert np.array_equal(steps[200].next_obs, steps[200].obs)
    finally:
        bank.close()
    # wait for the exits themselves (bounded), not for a guessed delay
    procs = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_an_env_exception_reaches_the_caller_with_env_id_and_traceback(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    monkeypatch.setenv("PYTHONPATH", str(DATA) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = env_children()
    bank = ProcBank("faulty_env:Faulty-v0", {}, seeds=[0], num_envs=1, num_actors=1)
    assert len(env_children() - before) == 1
    bank.observe([0])
    action = np.zeros((1, 1), np.int64)
    with pytest.raises(BankError) as err:
        for _ in range(10):  # it raises on its 6th step
            bank.step([0], action)
    msg = str(err.value)
    assert "faulty_env:Faulty-v0" in msg and "boom: Faulty env exploded" in msg and "Traceback" in msg
    # the failure shut the bank down: its process is gone and the bank refuses further work
    assert bank.closed and not env_children() - before
    with pytest.raises(BankError, match="closed"):
        bank.step([0], action)


def test_ctrl_c_leaves_no_orphaned_env_processes(tmp_path):
    exp = tmp_path / "long.py"
    exp.write_text(
        "from rlpop.experiment import Agent, Experiment\n"
        "experiment = Experiment(name='long', env='Pendulum-v1', agent=Agent('ppo', hparams="
        "{'num_actors': 2, 'envs_per_actor': 1, 'rollout_steps': 256}), total_steps=10**7, eval_steps=512)\n")
    proc = subprocess.Popen([sys.executable, "-m", "rlpop.run", str(exp), "--runs-dir", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.time() + 90
    children = []
    while time.time() < deadline:
        children = [c for c in me.children(recursive=True) if "spawn" in " ".join(c.cmdline())]
        if len(children) >= 2 and (tmp_path / "runs").exists() and list((tmp_path / "runs").glob("*/curves.csv")):
            break
        time.sleep(0.5)
    assert len(children) >= 2, "env processes never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    (run,) = list((tmp_path / "runs").iterdir())
    assert f"resume with `rlpop run --resume {run}`" in out  # names the directory
    _, alive = psutil.wait_procs(children, timeout=30)  # the exits themselves, not a guessed delay
    alive = [a for a in alive if a.is_running() and a.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphaned env processes: {alive}"
