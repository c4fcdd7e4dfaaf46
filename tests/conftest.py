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
