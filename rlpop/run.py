"""``rlpop run EXPERIMENT.py [--set key=value ...]`` -- run an experiment.

``rlpop run --resume RUN_DIR`` continues a killed run from its last
checkpoint (a finished run is left as it is, and says so).
"""
from __future__ import annotations

import argparse
import json
import importlib.util
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from rlpop.experiment import Experiment


class UsageError(Exception):
    """A problem with what the user gave; printed without a traceback."""


def load_experiment(path: str | Path) -> Experiment:
    """Import an experiment file and return its module-level ``experiment``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"experiment file {str(path)!r} not found. Give a path such as experiments/quick_fire.py")
    if path.suffix != ".py":
        raise UsageError(f"{path} is not an experiment file: give a Python file that defines `experiment` "
                         "(e.g. experiments/quick_fire.py)")
    # modules beside the experiment file (a user's env or learner) import here, in spawned processes
    # (they inherit sys.path) and in Ray workers (PYTHONPATH); a run directory's copy of the experiment also
    # needs the folder the run was started from (its config.json's experiment_dir): --resume, replay
    folders = [str(path.resolve().parent)]
    started_in = experiment_dir_of(path.resolve().parent)
    if started_in is not None and started_in not in folders:
        folders.insert(0, started_in)
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    parts = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    missing = [f for f in folders if f not in parts]
    if missing:
        os.environ["PYTHONPATH"] = os.pathsep.join([*missing, *filter(None, parts)])
    from rlpop.envs.registry import EXPERIMENT_MODULE_PREFIX

    spec = importlib.util.spec_from_file_location(f"{EXPERIMENT_MODULE_PREFIX}{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    original = _original_file(path.resolve().parent)
    if original is not None:  # a run directory's copy reads its siblings where the original file lies
        module.__file__ = str(original)
    try:
        spec.loader.exec_module(module)
    except ValueError as exc:  # the Experiment's own validation
        raise UsageError(f"{path}: invalid experiment: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 -- a mistake in the user's file: where, and what
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path.resolve()
                  or Path(f.filename) == path]
        where = f"{path}, line {frames[-1].lineno}" if frames else str(path)
        raise UsageError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, "experiment"):
        raise UsageError(f"{path} defines no `experiment`. Add a module-level "
                         "`experiment = rlpop.experiment.Experiment(...)`")
    exp = module.experiment
    if not isinstance(exp, Experiment):
        raise UsageError(f"{path}: `experiment` is a {type(exp).__name__}, not an rlpop.experiment.Experiment")
    return exp


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--set {item!r}: expected key=value, e.g. --set total_steps=2e5")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlpop run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", nargs="?", help="experiment file (a module defining `experiment`)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. total_steps=2e5, strategy.population=4, agent.hparams.lr=1e-3")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its run directory")
    p.add_argument("--backend", choices=["inline", "ray"], help="override the experiment's backend")
    p.add_argument("--address", help="join a Ray cluster: 'auto' or HOST:PORT (implies --backend ray)")
    p.add_argument("--runs-dir", default="runs", help="where run directories are made (default: runs/)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (workers, roles, budget) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--no-fit-check", action="store_true",
                   help="start even when the run's estimated memory exceeds what this machine has available")
    p.add_argument("--log", action="append", default=[], metavar="LOGGER",
                   help="also log to wandb, mlflow, or module:function (a listener of the run's events); "
                        "repeatable; kept in config.json, so --resume logs to the same places")
    return p


def _short(p: Any) -> str:
    if hasattr(p, "lo"):
        extra = f" x{list(p.factors)}" if hasattr(p, "factors") else ""
        return f"{type(p).__name__}({p.lo:g}..{p.hi:g}){extra}"
    return repr(p)


def plan(exp: Experiment) -> str:
    """A readable plan of the run: workers, roles, budget."""
    strat = exp.build_strategy()
    slots = list(strat.layout())
    roles: dict[str, int] = {}
    for s in slots:
        key = f"P{s.subpop} members" if s.role == "member" else "evaluators"
        roles[key] = roles.get(key, 0) + 1
    members = sum(1 for s in slots if s.role == "member")
    lines = [f"experiment {exp.name}: {exp.method} on {exp.env or exp.agent.learner} with learner {exp.agent.learner!r}",
             f"  workers: {len(slots)} ({', '.join(f'{v} {k}' for k, v in roles.items())})",
             f"  budget: {exp.total_steps:,} actor steps per member ({members * exp.total_steps:,} for the members)",
             f"  Q every {exp.eval_steps:,} steps; checkpoints every {exp.checkpoint_steps:,} steps",
             f"  searched: {', '.join(f'{k} {_short(v)}' for k, v in exp.hparam_space().params.items()) or '(nothing)'}",
             f"  backend: {exp.backend}, engine: {exp.engine}"]
    if hasattr(strat, "plan"):  # trial-based strategies and PB2 say how they will decide
        lines.append(f"  strategy: {strat.plan()}")
    return "\n".join(lines)


#: the run directory of the run in progress (for the Ctrl-C message)
_CURRENT_RUN: list[str] = []

#: exit code of a run stopped by SIGTERM (128 + 15, the shell's convention)
TERM_EXIT_CODE = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM: the run stops as on Ctrl-C (workers closed, the run directory left resumable)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def own_sigterm() -> None:
    """SIGTERM stops the CLI's run as Ctrl-C does (Ray's driver installs a handler of its own, whose C++ part
    prints a stack dump: this one replaces it, so the CLI calls it again after ``ray.init``)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


_CLI: list[bool] = []  # set while the CLI runs (the Python API leaves the caller's signal handlers alone)


def main(argv: Sequence[str] | None = None) -> int:
    # a CLI started from a background job inherits an ignored SIGINT: Ctrl-C must still stop it cleanly
    previous = None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        previous = signal.getsignal(signal.SIGTERM)
        own_sigterm()
        _CLI[:] = [True]
    try:
        return _cli(argv)
    finally:
        if _CLI:
            _CLI.clear()
            signal.signal(signal.SIGTERM, previous)


def _cli(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from rlpop.store import RunDirError

    try:
        return _main(args)
    except (UsageError, RunDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        where = _CURRENT_RUN[0] if _CURRENT_RUN else None
        tail = f"resume with `rlpop run --resume {shlex.quote(where)}`" if where else "no run directory was made"
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{what}: workers and actor processes stopped; {tail}", file=sys.stderr)
        return TERM_EXIT_CODE if isinstance(exc, Terminated) else 130


def _main(args: argparse.Namespace) -> int:
    from rlpop.store import RunDir, RunDirError

    if args.resume:
        if args.experiment or args.sets:
            given = " and ".join(x for x, on in (("an experiment file", args.experiment), ("--set", args.sets)) if on)
            raise UsageError(f"--resume continues the run exactly as recorded in {args.resume}/config.json; "
                             f"{given} cannot change it. Drop them, or start a new run with them")
        run = RunDir(args.resume)
        try:
            cfg = run.read_config()
        except (FileNotFoundError, RunDirError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        if run.read_status().get("finished"):
            print(f"{run.path}: this run already finished (round {run.read_status().get('round')}); nothing to do.")
            return 0
        exp = load_experiment(recorded_experiment(run.path, cfg))
        try:
            exp = exp.with_overrides(cfg.get("overrides", {}))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        recorded = cfg.get("backend", exp.backend)
        backend_name = "ray" if args.address else (args.backend or recorded)
        if backend_name != recorded:  # allowed: a member's run does not depend on the backend (rlpop.streams)
            print(f"note: resuming on the {backend_name} backend; the run started on {recorded}", file=sys.stderr)
        address = args.address or (cfg.get("address") if backend_name == "ray" else None)
        check_backend_extra(backend_name, "--address" if args.address else "--backend ray" if args.backend
                            else "the run's backend 'ray' (config.json)")
        if args.dry_run:  # the plan of the recorded run, and where it stands; nothing trains
            from rlpop.dryrun import estimate

            status = run.read_status()
            print(plan(exp))
            print(estimate(exp, backend=backend_name))
            print(f"{run.path}: at round {status.get('round', 0)} of {-(-exp.total_steps // exp.eval_steps)}; "
                  f"`rlpop run --resume {shlex.quote(str(run.path))}` continues it")
            return 0
        log = list(dict.fromkeys([*cfg.get("log", []), *args.log]))
        check_loggers(log)
        if address:
            check_address(address)
        check_writable(run.path, f"--resume {run.path}")
        for sub in ("checkpoints", "tb"):  # folders the run writes into
            if (run.path / sub).exists() and not (run.path / sub).is_dir():
                raise UsageError(f"--resume {run.path}: {sub} is a file where the run keeps a folder; move it away "
                                 "(a damaged copy?), then resume")
    else:
        if not args.experiment:
            raise UsageError("give an experiment file (rlpop run experiments/quick_fire.py) or --resume RUN_DIR")
        exp = load_experiment(args.experiment)
        overrides = parse_sets(args.sets)
        try:
            exp = exp.with_overrides(overrides)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        backend_name = "ray" if args.address else (args.backend or exp.backend)
        check_backend_extra(backend_name, "--address" if args.address else "--backend ray" if args.backend
                            else "backend='ray'")
        exp.backend = backend_name
        address = args.address
        for note in exp.notes:
            print(f"note: {note}", file=sys.stderr)
        if address:
            check_address(address)
        log = list(dict.fromkeys(args.log))
        check_loggers(log)
        check_learner(exp)
        check_env(exp)  # a dry run too: its plan would be of a run that cannot start
        if not args.dry_run:
            check_runs_dir(args.runs_dir)
        if not args.dry_run and not args.no_fit_check and not address:
            from rlpop.fit import check

            try:
                check(exp, backend_name)  # before the run directory exists
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        if args.dry_run:
            print(plan(exp))
            from rlpop.dryrun import estimate

            print(estimate(exp, backend=backend_name))
            return 0
        try:
            run = RunDir.create(args.runs_dir, exp.name)
        except OSError as exc:
            raise UsageError(f"--runs-dir {args.runs_dir}: cannot make a run directory there ({exc.strerror or exc}); "
                             "give a --runs-dir you can write") from exc
        run.acquire_lock()
        try:
            shutil.copy(args.experiment, run.path / "experiment.py")
            run.write_config(run_config(exp, backend_name, address, overrides, args.experiment, log=log))
        except OSError as exc:
            run.release_lock()
            shutil.rmtree(run.path, ignore_errors=True)
            raise UsageError(f"--runs-dir {args.runs_dir}: cannot write {exc.filename or run.path} "
                             f"({exc.strerror or exc}); give a --runs-dir you can write") from exc
    return execute(exp, run, backend_name, address, quiet=args.quiet, resume=bool(args.resume), log=log,
                   keep_if_unstarted=bool(args.resume))


def run_config(exp: Experiment, backend_name: str, address: str | None, overrides: dict[str, str],
               experiment_file: str | Path, **extra: Any) -> dict[str, Any]:
    """What a run directory's config.json records: the resolved experiment and how it was started --
    ``experiment_dir`` is the folder the experiment file was loaded from (its env and learner modules), which
    ``--resume`` and replay put back on the import path."""
    return {**exp.to_dict(), "backend": backend_name, "address": address, "overrides": overrides,
            "experiment_file": str(experiment_file), "experiment_dir": str(Path(experiment_file).resolve().parent),
            "notes": exp.notes, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, **extra}


def _original_file(run_dir: Path) -> Path | None:
    """Where the experiment file of the run in ``run_dir`` was started from (config.json's ``experiment_file``,
    beside ``experiment_dir``), when that is outside the run directory; else None (a fresh experiment file, or a
    run whose experiment file lives in its run directory, as a replay's does)."""
    folder = experiment_dir_of(run_dir)
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
        recorded = Path(cfg["experiment_file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    in_run_dir = recorded.is_absolute() and recorded.parent.resolve() == run_dir.resolve()
    if folder is None or "replay_of" in cfg or in_run_dir:
        return None  # a replay's experiment.py is written into its run directory, beside what it reads
    return Path(folder) / recorded.name


def experiment_dir_of(run_dir: Path) -> str | None:
    """The folder a run directory's experiment was started from (config.json's ``experiment_dir``; for runs
    written before it was recorded, an absolute ``experiment_file``'s folder), or None."""
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        return None
    try:
        c = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    folder = c.get("experiment_dir")
    if folder is None and c.get("experiment_file") and Path(c["experiment_file"]).is_absolute():
        folder = str(Path(c["experiment_file"]).parent)
    return folder if folder and Path(folder).is_dir() else None


def recorded_experiment(run_dir: Path, cfg: dict[str, Any]) -> Path:
    """The run directory's copy of its experiment file, or one line saying where to put it back."""
    path = run_dir / "experiment.py"
    if not path.is_file():
        started = cfg.get("experiment_file")
        src = f"the file it was started from ({started})" if started else "the experiment file it was started from"
        raise UsageError(f"{run_dir}: experiment.py is missing, so the run cannot be rebuilt; copy {src} to "
                         f"{shlex.quote(str(path))}")
    return path


def _first_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_runs_dir(root: str | Path) -> None:
    """``--runs-dir`` can hold a new run directory: its nearest existing folder is a folder this process may
    write (a file in its place, a read-only file system, no permission: one line before anything is made)."""
    given = Path(root)
    at = _first_existing(given)
    if not at.is_dir():
        raise UsageError(f"--runs-dir {root}: {at} is a file, not a folder; give another --runs-dir (or move the file)")
    check_writable(at, f"--runs-dir {root}")


def check_writable(folder: Path, what: str) -> None:
    """One line unless this process may create files in ``folder``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        ro = False
        try:
            ro = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            pass
        why = "on a read-only file system" if ro else "not writable by this user"
        raise UsageError(f"{what}: {folder} is {why}; give a folder you can write"
                         + ("" if what.startswith("--runs-dir") else " (copy the run directory there and resume the copy)"))


def check_learner(exp: Experiment) -> None:
    """A learner of the user's own has the whole learner protocol (rlpop.preflight)."""
    from rlpop.preflight import check_learner_protocol

    try:
        check_learner_protocol(exp.agent.learner)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def check_loggers(specs: Sequence[str]) -> None:
    """Every ``--log`` can be attached (its extra installed, its store usable, its function importable)."""
    from rlpop.loggers import check

    for spec in specs:
        try:
            check(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc


def experiment_source(exp: Experiment) -> str | None:
    """An experiment file that rebuilds ``exp`` from its repr (an experiment made in Python, not loaded from a
    file), or None when the repr does not rebuild it (objects other than rlpop's spec classes inside)."""
    text = ('"""Written by rlpop.run.execute: the experiment as it was given in Python."""\n'
            "from rlpop.experiment import *  # noqa: F401,F403\nfrom rlpop.hparams import *  # noqa: F401,F403\n\n"
            f"experiment = {exp!r}\n")
    try:
        ns: dict[str, Any] = {}
        exec(compile(text, "<experiment>", "exec"), ns)  # noqa: S102 -- our own repr, checked below
        same = ns["experiment"].to_dict() == exp.to_dict()
    except Exception:  # noqa: BLE001 -- a repr that is not code: no file
        return None
    return text if same else None


def write_run_files(exp: Experiment, run, backend_name: str, address: str | None, experiment_file=None,
                    log: Sequence[str] = ()) -> None:
    """What the CLI writes before a run: experiment.py (a copy of ``experiment_file``, else rebuilt from the
    experiment's repr) and config.json -- so plot, summary, lineage, replay and --resume work on the run."""
    target = run.path / "experiment.py"
    if experiment_file is not None:
        shutil.copy(experiment_file, target)
    else:
        text = experiment_source(exp)
        if text is None:
            print(f"note: {target} not written: the experiment holds objects its repr cannot rebuild; pass "
                  "experiment_file= (the file defining `experiment`) so --resume and replay can rebuild it",
                  file=sys.stderr)
        else:
            target.write_text(text)
    run.write_config(run_config(exp, backend_name, address, {}, experiment_file or target, log=list(log),
                                route="python"))


def check_spaces(exp: Experiment, env) -> None:
    """The learner takes the env's spaces (rlpop.conformance), or one line naming the space and the wrapper."""
    from rlpop.conformance import check_spaces as check

    try:
        check(exp.agent.learner, env)
    except ValueError as exc:
        raise UsageError(f"env={exp.env!r}: {exc}") from exc


def check_backend_extra(backend_name: str, how: str) -> None:
    """The Ray backend needs the ``ray`` extra: one line naming it, before the run directory exists."""
    if backend_name == "ray":
        from rlpop.extras import require

        try:
            require("ray", how)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc


def check_env(exp: Experiment) -> None:
    """Build one env with the experiment's env_kwargs, so an env that rejects them fails before the run dir."""
    from rlpop.agents import learner_class

    if exp.env is None or not getattr(learner_class(exp.agent.learner), "needs_env", True):
        return
    from rlpop.envs import make_env

    try:
        env = make_env(exp.env, **dict(exp.env_kwargs))
    except Exception as exc:  # noqa: BLE001 -- whatever the env raises, named with the fix
        kw = f" with env_kwargs={exp.user_env_kwargs!r}" if exp.user_env_kwargs else ""
        kw += f" and env_wrappers={[w[0] for w in exp.env_wrappers]}" if exp.env_wrappers else ""
        raise UsageError(f"env={exp.env!r}{kw} cannot be built: {type(exc).__name__}: {exc}; fix env_kwargs "
                         "or env_wrappers (or the env)") from exc
    try:
        check_spaces(exp, env)
        from rlpop.preflight import check_env_returns

        try:
            check_env_returns(f"env={exp.env!r}", env)  # what it returns is what it declares
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    finally:
        env.close()
    from rlpop.agents import learner_defaults
    from rlpop.envs import unshippable

    hp = {**learner_defaults(exp.agent.learner), **exp.agent.hparams}
    if exp.backend == "ray" or int(hp.get("num_actors") or 0) > 0:
        why = unshippable(exp.env)
        if why:
            where = "Ray workers" if exp.backend == "ray" else "env processes (num_actors > 0)"
            raise UsageError(f"{why}; {where} build their own envs")


def local_ray_address() -> str:
    """The address of the Ray cluster ``ray start`` left on this machine (what ``ray.init(address="auto")``
    finds), or one line saying there is none."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except ImportError:
        return "auto"  # another Ray: let ray.init say
    except Exception:  # noqa: BLE001 -- ConnectionError: no cluster recorded here
        found = None
    if not found:
        raise UsageError("--address auto: no Ray cluster runs on this machine; start one with `ray start --head`, "
                         "give its HOST:PORT, or drop --address to run on an embedded one")
    return found


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at ``--address HOST:PORT``."""
    import socket

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or local_ray_address()
        if address == "auto":
            return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r}: give HOST:PORT of a Ray cluster's head (e.g. 10.0.0.5:6379) "
                         "or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                         "with `ray start --head --port PORT`, or drop --address to run on an embedded one") from exc


class WorkersDidNotStart(Exception):
    """The backend or its workers could not start: nothing trained (one line)."""


def execute(exp: Experiment, run, backend_name: str, address: str | None = None, quiet: bool = False,
            resume: bool = False, listeners: Sequence = (), log: Sequence[str] = (),
            experiment_file: str | Path | None = None, keep_if_unstarted: bool = True) -> int:
    """Run (or resume) ``exp`` in ``run`` as its one writer. A :class:`rlpop.store.RunDirError` (a live lock, a
    damaged run directory, a full disk) reaches the caller, which prints it in one line. ``listeners`` hear the
    run's events (:mod:`rlpop.events`) beside the display and TensorBoard; ``log``: the CLI's ``--log`` specs
    (``"wandb"``, ``"mlflow"``, ``"module:function"``).

    A new run directory without config.json gets what the CLI writes (config.json, experiment.py: a copy of
    ``experiment_file``, else rebuilt from the experiment's repr), so plot, replay, summary and ``--resume``
    work on it as on a CLI run. ``keep_if_unstarted=False`` (the CLI's new runs): a run directory whose workers
    could not start is removed (nothing was trained; the error says why)."""
    from rlpop.agents import learner_class

    note = run.acquire_lock()
    if note:
        print(note, file=sys.stderr)
    _CURRENT_RUN[:] = [str(run.path)]
    try:
        if not resume and not run.config_path.exists():
            if backend_name == "ray":
                from rlpop.extras import require

                require("ray", "backend='ray'")
            check_loggers(log)
            check_learner(exp)
            if exp.env is not None and getattr(learner_class(exp.agent.learner), "needs_env", True):
                from rlpop.envs import make_env
                from rlpop.preflight import check_env_returns

                env = make_env(exp.env, **dict(exp.env_kwargs))
                try:
                    check_spaces(exp, env)
                    try:
                        check_env_returns(f"env={exp.env!r}", env)
                    except ValueError as exc:
                        raise UsageError(str(exc)) from exc
                finally:
                    env.close()
            write_run_files(exp, run, backend_name, address, experiment_file, log)
        try:
            return _execute(exp, run, backend_name, address, quiet, resume, listeners, log)
        except WorkersDidNotStart as exc:
            gone = ""
            if not keep_if_unstarted:
                run.release_lock()
                shutil.rmtree(run.path, ignore_errors=True)
                _CURRENT_RUN.clear()
                gone = " (nothing trained; no run directory kept)"
            print(f"error: the workers could not start: {exc}{gone}", file=sys.stderr)
            return 1
    finally:
        if run.path.exists():
            run.release_lock()


def _execute(exp: Experiment, run, backend_name: str, address: str | None, quiet: bool, resume: bool,
             listeners: Sequence = (), log: Sequence[str] = ()) -> int:
    from rlpop.backends import make_backend
    from rlpop.controller import Controller
    from rlpop.progress import Progress, end_summary
    from rlpop.tblog import TensorBoardLogger

    from rlpop.loggers import make_all
    from rlpop.store import RunDirError

    progress = Progress(enabled=not quiet)
    tb = TensorBoardLogger(str(run.path / "tb"))
    config = run.read_config() if run.config_path.exists() else exp.to_dict()
    logged = make_all(log, run.path, config)
    payload = None
    if resume:  # before any process starts: a damaged run directory fails here, in one line
        ckpt, payload, skipped = run.load_latest_checkpoint()
        for line in skipped:
            print(line, file=sys.stderr)
    from rlpop.worker import failure_line

    backend = None
    stopped: tuple[BaseException, str] | None = None  # an error that ended the run: the exception, its traceback
    try:
        try:  # one line, not one traceback per worker
            # the experiment's folder (its env and learner modules) is shipped to the nodes of a joined Ray cluster
            backend = make_backend(backend_name, address, engine=exp.engine, shard_size=exp.shard_size,
                                   on_progress=progress.heartbeat, run_dir=str(run.path),
                                   experiment_dir=config.get("experiment_dir"))
            if _CLI:
                own_sigterm()  # again: ray.init installed its own
            ctl = Controller(exp, run, backend)
            for listener in (tb, progress, *logged, *listeners):
                ctl.subscribe(listener)
            ctl.start()
        except Exception as exc:  # noqa: BLE001
            import traceback

            raise WorkersDidNotStart(failure_line(traceback.format_exc())) from exc
        if resume:
            ctl.resume(payload)
            print(f"resuming {run.path} from round {ctl.round} (checkpoint {ckpt.name})" if payload is not None
                  else f"{run.path}: no checkpoint yet; starting from the beginning")
        print(f"run directory: {run.path}", flush=True)
        try:
            ctl.run()
        except RunDirError:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever stopped the loop: one line (the traceback to a file)
            import traceback

            stopped = (exc, traceback.format_exc())
    finally:
        progress.close()
        tb.close()
        for listener in logged:
            if hasattr(listener, "close"):
                listener.close()
        if backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: BLE001 -- the run's outcome is said below; this is one more line
                import traceback

                print(f"note: closing the workers failed: {failure_line(traceback.format_exc())}", file=sys.stderr)
    if stopped is not None:
        return run_stopped(run, ctl.round, *stopped)
    print(end_summary(ctl.round_finished()))
    failed = ctl.failed_reason()
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0


def run_stopped(run, rounds_done: int, exc: BaseException, tb: str) -> int:
    """A run whose loop raised: one line; exit 2 for a run directory that refuses writes (fix it and resume),
    else 1 with the traceback kept in the run directory's error.log."""
    from rlpop.worker import failure_line

    where = shlex.quote(str(run.path))
    ours = isinstance(exc, OSError) and exc.filename and str(exc.filename).startswith(str(run.path))
    if ours and isinstance(exc, (FileExistsError, NotADirectoryError)):
        print(f"error: {exc.filename}: a file is where the run keeps a folder ({exc.strerror}); move it away, then "
              f"resume with `rlpop run --resume {where}`", file=sys.stderr)
        return 2
    if ours:
        print(f"error: cannot write {exc.filename} ({exc.strerror or exc}): the run directory or its file system "
              f"refuses writes; fix that, then resume with `rlpop run --resume {where}`", file=sys.stderr)
        return 2
    kept = ""
    try:
        (run.path / "error.log").write_text(tb)
        kept = f" (traceback in {shlex.quote(str(run.path / 'error.log'))})"
    except OSError:
        pass
    print(f"error: the run stopped (last round recorded: {rounds_done}): {failure_line(tb)}{kept}; resume with "
          f"`rlpop run --resume {where}` once that is fixed", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
