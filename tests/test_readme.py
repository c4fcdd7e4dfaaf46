"""The README a first-time user reads: its commands, its tables and its paths are true of this tree."""
import re

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

import pytest

from conftest import ROOT
from rlpop import cli

README = (ROOT / "README.md").read_text()
STRATEGIES = ("random search", "PBT", "FIRE PBT", "ASHA", "HyperBand", "Bayesian", "PB2")


def block(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\n```\n(.*?)\n```\n<!-- /{marker} -->", README, re.S)
    assert m, marker
    return m.group(1)


def test_the_two_commands():
    assert block("test-command") == 'pip install -e ".[dev]" && python -m pytest -q -p no:cacheprovider'
    main = block("main-command")
    assert main == "pip install -e . && rlpop run experiments/quick_fire.py"
    assert (ROOT / "experiments" / "quick_fire.py").is_file()


def test_the_first_screen_says_what_how_and_where():
    first = README[:README.index("## How it works")]
    intro = first[:first.index("## Install")]
    for name in STRATEGIES:
        assert name in intro, name
    for needle in ("Python >= 3.10", "python -m venv", "pip install -e .", "torch", "rlpop[envpool]", "## Run",
                   "What you will see", "Where to go next"):
        assert needle in first, needle
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in extras:
        assert re.search(rf"^\| [^|]*`{extra}`", first, re.M), extra  # every extra in the install table


def test_strategy_names_everywhere():
    desc = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    for name in STRATEGIES:
        assert name in desc, name
    from rlpop.experiment import Experiment

    with pytest.raises(ValueError) as exc:
        Experiment(name="x", env="CartPole-v1", strategy="pbt")
    for spec in ("Single()", "RandomSearch(", "PBT(", "FIRE(", "ASHA(", "HyperBand(", "'tpe'", "PB2("):
        assert spec in str(exc.value), spec


def test_strategies_table_is_one_table():
    start = README.index("| strategy | spec | what it does |")
    rows = []
    for line in README[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    text = "\n".join(rows)
    for spec in ("`Single()`", "`RandomSearch(", "`PBT(", "`FIRE(", "`ASHA(", "`HyperBand(", '`search="tpe"`', "`PB2("):
        assert spec in text, spec


def test_paths_and_commands_exist():
    paths = set(re.findall(r"`((?:rlpop|agents|envs|experiments|benchmarks|docs|tests)/[\w/.-]+\.(?:py|md|json))`",
                           README))
    assert paths, "no paths found"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing
    commands = set(re.findall(r"(?:^|`)rlpop ([a-z]+)\b", README, re.M))  # in code: a line or a `span`
    assert "run" in commands and "plot" in commands
    unknown = sorted(c for c in commands if c not in cli.available())
    assert not unknown, unknown
