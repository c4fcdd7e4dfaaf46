import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

# every test runs offline and on CPU, one thread per process (2-core CI)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """One embedded Ray cluster for the whole test session."""
    import ray

    if not ray.is_initialized():
        from rlpop.backends.ray_backend import driver_pythonpath

        # the test data modules (custom learners, envs) must import in Ray workers too
        ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                       runtime_env={"env_vars": {"PYTHONPATH": driver_pythonpath(extra=[str(DATA)])}})
        ray.test_address = ctx.address_info["gcs_address"]  # for CLI runs that join with --address
    yield ray
    ray.shutdown()


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 240, env: dict | None = None):
    import subprocess

    e = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rlpop.run", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=e)


def start_gated_run(experiment: Path, tmp_path: Path, at: int):
    """Start ``python -m rlpop.run`` on a copy of ``experiment`` (a tests/data file on Corridor-v0) whose envs
    block at their ``at``-th step (tests/data/gated_env.py), and wait until one does -- an event the run writes,
    so a test that kills the run mid-way never depends on the machine's speed. Returns (process, runs dir,
    gate dir, env for a resume); the caller kills the process group and touches ``gate / "release"``."""
    import subprocess
    import time

    gate = tmp_path / "gate"
    gate.mkdir()
    text = experiment.read_text()
    assert 'env="Corridor-v0",' in text, experiment
    exp = tmp_path / experiment.name
    exp.write_text("from rlpop.envs import register_env\n"
                   "register_env('GatedCorridor-v0', 'gated_env:GatedCorridor')\n"
                   + text.replace('env="Corridor-v0",',
                                  f'env="GatedCorridor-v0", env_kwargs={{"gate": {str(gate)!r}, "at": {at}}},'))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DATA), os.environ.get("PYTHONPATH", "")])}
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "rlpop.run", str(exp), "--runs-dir", str(runs), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=env)
    deadline = time.time() + 300  # a bound on a broken run only: the wait ends on the marker
    while not (gate / "reached").exists():
        if proc.poll() is not None or time.time() > deadline:
            import signal

            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"the run never reached the gate: {proc.communicate()[0][-3000:]}")
        time.sleep(0.1)
    return proc, runs, gate, {"PYTHONPATH": env["PYTHONPATH"]}
