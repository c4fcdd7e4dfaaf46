"""``rlpop COMMAND ...`` -- the one command (the ``rlpop`` console script).

Each command is the module of the same name with the same flags: ``rlpop run X.py`` is ``python -m rlpop.run
X.py``, ``rlpop plot RUN_DIR`` is ``python -m rlpop.plot RUN_DIR``, and so on; ``rlpop COMMAND -h`` lists its flags.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Sequence

#: command -> (module whose ``main(argv)`` runs it, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("rlpop.run", "run an experiment file, or --resume RUN_DIR"),
    "plot": ("rlpop.plot", "the paper's figures from run directories"),
    "summary": ("rlpop.summary", "one table across runs: best Q, area under the top return, successes, speed"),
    "lineage": ("rlpop.lineage", "the best member's hyperparameter schedule, back through every copy"),
    "replay": ("rlpop.replay", "RETRAIN one fresh agent on a member's hyperparameter schedule (does not play it)"),
    "export": ("rlpop.export", "write a run's best agent to a policy file that runs with torch alone"),
    "evaluate": ("rlpop.evaluate", "play a run's best agent (or a policy file) on fresh episodes; --video"),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rlpop")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def available() -> dict[str, tuple[str, str]]:
    """The commands whose module exists in this install."""
    return {c: v for c, v in COMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


def usage() -> str:
    cmds = available()
    width = max(map(len, cmds))
    lines = ["usage: rlpop COMMAND [ARGS ...]   (rlpop COMMAND -h: its flags; rlpop --version)", "",
             "Population training for RL: random search, PBT, FIRE PBT, ASHA, HyperBand, Bayesian search (TPE/GP) "
             "and PB2.", "", "commands:"]
    lines += [f"  {c:<{width}}  {help_}" for c, (_, help_) in cmds.items()]
    lines += ["", "e.g. rlpop run experiments/quick_fire.py; rlpop plot runs/quick_fire-*"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        print(f"rlpop {version()}")
        return 0
    cmd, rest = args[0], args[1:]
    if cmd not in COMMANDS and (cmd.endswith(".py") or cmd == "--resume"):
        cmd, rest = "run", args  # the older `rlpop EXPERIMENT.py` form
    cmds = available()
    if cmd not in cmds:
        print(f"error: rlpop: unknown command {cmd!r}; commands: {', '.join(cmds)} (rlpop --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(cmds[cmd][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
