"""Actor processes: data flows, errors surface with env id + traceback, nothing is orphaned."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from rlpop.agents.actors import ActorError, ActorPool
from rlpop.agents.networks import PolicySpec
from rlpop.envs import make_env

DATA = Path(__file__).parent / "data"


def spec_for(env_id):
    env = make_env(env_id)
    return PolicySpec("rlpop.agents.networks:ActorCritic",
                      {"observation_space": env.observation_space, "action_space": env.action_space})


def actor_children() -> set[int]:
    """Pids of this process's live spawned children (actor processes; not multiprocessing's resource tracker)."""
    pids = set()
    for c in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE:
                pids.add(c.pid)
        except psutil.Error:  # exited meanwhile
            pass
    return pids


def test_two_actor_processes_collect_time_major_rollouts_and_close():
    spec = spec_for("Pendulum-v1")
    before = actor_children()
    pool = ActorPool("Pendulum-v1", {}, spec, num_actors=2, envs_per_actor=3, seed=0)
    pids = actor_children() - before
    assert len(pids) == 2  # one process per actor
    try:
        w = spec.build().state_dict()
        ro = pool.collect(w, (np.zeros(3), np.ones(3)), 210)
        assert ro.obs.shape == (210, 6, 3) and ro.actions.shape == (210, 6, 1)
        assert ro.truncated[199].all() and not ro.terminated.any()  # Pendulum: 200-step time limit
        # the true final observation is kept where an episode ended
        assert not np.allclose(ro.next_obs[199], ro.obs[200])
        assert len(ro.episode_returns) == 6
    finally:
        pool.close()
    # wait for the exits themselves (bounded), not for a guessed delay
    procs = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_actor_exception_reaches_the_caller_with_env_id_and_traceback(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    monkeypatch.setenv("PYTHONPATH", str(DATA) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec = spec_for("faulty_env:Faulty-v0")
    before = actor_children()
    pool = ActorPool("faulty_env:Faulty-v0", {}, spec, num_actors=1, envs_per_actor=1, seed=0)
    assert len(actor_children() - before) == 1
    with pytest.raises(ActorError) as err:
        pool.collect(spec.build().state_dict(), None, 20)
    msg = str(err.value)
    assert "faulty_env:Faulty-v0" in msg and "boom: Faulty env exploded" in msg and "Traceback" in msg
    # the failure shut the pool down: its actor is gone and the pool refuses further work
    assert not actor_children() - before
    with pytest.raises(ActorError, match="closed"):
        pool.collect(spec.build().state_dict(), None, 20)


def test_ctrl_c_leaves_no_orphaned_actor_processes(tmp_path):
    exp = tmp_path / "long.py"
    exp.write_text(
        "from rlpop.experiment import Agent, Experiment\n"
        "experiment = Experiment(name='long', env='Pendulum-v1', agent=Agent('ppo', hparams="
        "{'num_actors': 2, 'envs_per_actor': 1, 'rollout_steps': 256}), total_steps=10**7, eval_steps=512)\n")
    proc = subprocess.Popen([sys.executable, "-m", "rlpop.run", str(exp), "--runs-dir", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.time() + 90
    actors = []
    while time.time() < deadline:
        actors = [c for c in me.children(recursive=True) if "spawn" in " ".join(c.cmdline())]
        if len(actors) >= 2 and (tmp_path / "runs").exists() and list((tmp_path / "runs").glob("*/curves.csv")):
            break
        time.sleep(0.5)
    assert len(actors) >= 2, "actor processes never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    (run,) = list((tmp_path / "runs").iterdir())
    assert f"resume with `rlpop run --resume {run}`" in out  # names the directory
    _, alive = psutil.wait_procs(actors, timeout=30)  # the exits themselves, not a guessed delay
    alive = [a for a in alive if a.is_running() and a.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphaned actor processes: {alive}"
