"""Package discovery for the repo's layout (everything else is in pyproject.toml).

``rlpop/`` installs as ``rlpop``; the top-level ``agents/`` and ``envs/`` install as ``rlpop.agents`` and
``rlpop.envs`` (no bare ``agents``/``envs`` package ever lands in site-packages). Every package below those three
folders is found here, so a new subpackage cannot be left out of a wheel (pyproject.toml alone cannot find
packages under a renamed folder). ``tests/test_packaging.py`` builds the wheel and checks every module is in it.
"""
from setuptools import find_packages, setup

#: installed name -> folder in the repository
ROOTS = {"rlpop": "rlpop", "rlpop.agents": "agents", "rlpop.envs": "envs"}


def _packages() -> list[str]:
    out = []
    for name, folder in ROOTS.items():
        out += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(out)


setup(package_dir=dict(ROOTS), packages=_packages())
