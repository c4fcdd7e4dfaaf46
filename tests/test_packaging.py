"""rlpop installs like a package: a wheel built from a clean copy of the tree holds every module of rlpop/,
agents/ (as rlpop.agents) and envs/ (as rlpop.envs), nothing named bare envs/agents, and -- installed into a fresh
venv without the repository on the path -- runs an experiment from another folder.

Nothing is downloaded: the wheel is built without build isolation and installed with ``--no-deps --no-index``; the
venv sees this environment's packages (torch, gymnasium, ...) through ``--system-site-packages``.
"""
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

#: installed package -> folder in the repository (as setup.py maps them)
ROOTS = {"rlpop": "rlpop", "rlpop/agents": "agents", "rlpop/envs": "envs"}


def source_modules(tree: Path) -> set[str]:
    """Every .py file of the three package folders, as its path inside a wheel."""
    out = set()
    for installed, folder in ROOTS.items():
        for f in (tree / folder).rglob("*.py"):
            rel = f.relative_to(tree / folder)
            if "__pycache__" in rel.parts:
                continue
            out.add(f"{installed}/{rel.as_posix()}")
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel, built from a copy of the package folders and build files (no egg-info, no build/, no runs/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ROOTS.values():
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "--wheel-dir", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (whl,) = list(out.glob("rlpop-*.whl"))
    return whl, src


def test_wheel_holds_every_module(built):
    wheel, src = built
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = source_modules(src)
    assert "rlpop/backends/ray_backend.py" in expected and "rlpop/strategies/pbt.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"modules of the source tree missing from the wheel: {missing}"
    tops = {n.split("/")[0] for n in names}
    assert all(t == "rlpop" or t.startswith("rlpop-") for t in tops), sorted(tops)  # no bare envs/agents
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rlpop =" in zipfile.ZipFile(wheel).read(meta).decode()  # the `rlpop` command


def test_source_modules_sees_a_new_subpackage(tmp_path):
    """The check above can fail: a module in a new subpackage counts as expected."""
    (tmp_path / "agents" / "newpkg").mkdir(parents=True)
    (tmp_path / "agents" / "newpkg" / "__init__.py").write_text("")
    assert source_modules(tmp_path) == {"rlpop/agents/newpkg/__init__.py"}


def test_installed_wheel_runs_an_experiment(built, tmp_path):
    wheel = built[0]
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    # pip of this environment installs into the venv (--python: no pip inside the venv, nothing downloaded)
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "experiments" / "toy_pbt.py", work / "toy_pbt.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUNBUFFERED"] = "1"
    probe = subprocess.run([str(py), "-c", "import sys, rlpop, rlpop.agents, rlpop.envs, rlpop.backends; "
                            "print(rlpop.__file__); print(rlpop.agents.__file__); print(sys.path)"],
                           cwd=work, capture_output=True, text=True, timeout=120, env=env)
    assert probe.returncode == 0, probe.stderr[-3000:]
    lines = probe.stdout.splitlines()
    for f in lines[:2]:  # the venv's own rlpop wins over the outer editable install
        assert Path(f).resolve().is_relative_to(env_dir.resolve()), lines
    assert str(ROOT) not in lines[2], lines[2]
    version = subprocess.run([str(env_dir / "bin" / "rlpop"), "--version"], cwd=work, capture_output=True,
                             text=True, timeout=60, env=env)
    assert version.returncode == 0 and version.stdout.startswith("rlpop "), version.stderr
    cmd = [str(env_dir / "bin" / "rlpop"), "run", "toy_pbt.py", "--quiet", "--set", "total_steps=400",
           "--set", "strategy.population=4", "--set", "strategy.ready_steps=100"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run_dir,) = list((work / "runs").glob("toy_pbt-*"))
    assert (run_dir / "config.json").is_file() and (run_dir / "curves.csv").is_file()
    assert len((run_dir / "curves.csv").read_text().splitlines()) > 1
