"""The one command: ``rlpop run|plot|summary|lineage|replay ...`` is ``python -m rlpop.X`` with the same flags."""
import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT
from rlpop import cli


def test_version_and_usage(capsys):
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"rlpop {version('rlpop')}\n"
    assert cli.main([]) == 2  # no command: the usage on stderr
    err = capsys.readouterr().err
    for c in ("run", "plot", "summary", "lineage", "replay"):
        assert f"\n  {c} " in err, err
    assert cli.main(["--help"]) == 0 and "usage: rlpop COMMAND" in capsys.readouterr().out


def test_unknown_command(capsys):
    assert cli.main(["plto", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rlpop: unknown command 'plto'; commands: run, plot") and err.count("\n") == 1


@pytest.mark.parametrize("cmd", sorted(cli.available()))
def test_each_command_is_its_module(cmd, tmp_path, capsys, monkeypatch):
    module = importlib.import_module(cli.COMMANDS[cmd][0])
    seen = []
    monkeypatch.setattr(module, "main", lambda argv: seen.append(list(argv)) or 7)
    assert cli.main([cmd, "A", "--flag", "v"]) == 7
    assert seen == [["A", "--flag", "v"]]


@pytest.mark.parametrize("cmd", ["run", "plot", "summary", "lineage"])
def test_help_names_the_command(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([cmd, "-h"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: rlpop {cmd} ")


def test_same_errors_as_the_module_form(tmp_path, capsys):
    """A directory that is not a run: the same exit code and line from both forms."""
    from rlpop import summary

    rc_module = summary.main([str(tmp_path)])
    out_module = capsys.readouterr()
    assert cli.main(["summary", str(tmp_path)]) == rc_module != 0
    assert capsys.readouterr() == out_module


def test_experiment_file_alone_means_run(monkeypatch):
    from rlpop import run

    seen = []
    monkeypatch.setattr(run, "main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["experiments/toy_pbt.py", "--dry-run"]) == 0
    assert cli.main(["--resume", "runs/x"]) == 0
    assert seen == [["experiments/toy_pbt.py", "--dry-run"], ["--resume", "runs/x"]]


def test_console_script_and_python_m():
    """The installed `rlpop` script and `python -m rlpop` both reach the command (a real process each)."""
    for cmd in ([sys.executable, "-m", "rlpop", "--version"],
                [str(Path(sysconfig.get_path("scripts")) / "rlpop"), "--version"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert res.returncode == 0 and res.stdout.startswith("rlpop "), (cmd, res.stdout, res.stderr)
    res = subprocess.run([sys.executable, "-m", "rlpop", "run", str(ROOT / "experiments" / "toy_pbt.py"),
                          "--dry-run"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0 and "experiment toy_pbt: pbt" in res.stdout, res.stderr
