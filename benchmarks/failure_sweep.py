"""Failure-mode sweep (issue 27): every class of failure a user can hit, as tiny CLI runs, judged as a user would.

    python benchmarks/failure_sweep.py [--only NAME ...] [--skip-ray] [--out FILE]

Each case runs ``python -m rlpop.<command> ...`` in its own session, with a marker in its environment that every
process it starts inherits (env processes, Ray's cluster and workers). It records the exit code, the message's
first line (the first ``error:`` / ``warning:`` / ``interrupted`` line, else the first line of stderr), whether a
traceback was printed, whether a run directory was left where the case says none may be, and whether any
process of the case outlived it (a marked process alive 5 s after the case's command ended; for the Ray cases
the processes of the run's embedded cluster are also snapshotted before the signal). A case is *clear* when
its exit code is the README's, its message holds the expected words, no traceback, no run directory where
there must be none, and nothing left running.

Writes ``benchmarks/results/failure_sweep.json`` and prints the table as markdown. The Ray cases (kill -9,
Ctrl-C and SIGTERM of a ``--backend ray`` run, a member rebuild that raises on Ray) take most of its minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine_info, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MARK = "RLPOP_SWEEP_CASE"
LEFT_AFTER_S = 5.0

# ------------------------------------------------------------------------------------------------ fixtures
ENVS = '''
import gymnasium as gym
import numpy as np
from rlpop.envs import register_env


class Sweep2d(gym.Env):
    """ok_resets: resets that work per instance; obs_dim / step_obs_dim: what reset / step return (2 declared);
    step_raises: step() raises."""
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, ok_resets=10**9, obs_dim=2, step_obs_dim=2, step_raises=False):
        self.ok, self.n, self.dim, self.sdim, self.raises = ok_resets, 0, obs_dim, step_obs_dim, step_raises

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n += 1
        if self.n > self.ok:
            raise RuntimeError("boom: reset failed")
        return np.zeros(self.dim, np.float32), {}

    def step(self, action):
        if self.raises:
            raise RuntimeError("boom: step failed")
        return np.zeros(self.sdim, np.float32), 1.0, True, False, {}


register_env("Sweep2d-v0", Sweep2d, max_episode_steps=20)
'''

LEARNERS = '''
import math

import numpy as np

from rlpop.agents.base import DIVERGED, TrainResult
from rlpop.toy import NoisyQuadratic


class NoStateMethods:
    mutable_hparams = frozenset({"lr"})
    needs_env = False

    def __init__(self, *a, **k):
        pass

    def train(self, steps):
        return TrainResult(steps)

    def get_hparams(self):
        return {}

    def set_hparams(self, hparams):
        pass


class ReturnsNone(NoisyQuadratic):
    def train(self, steps):
        super().train(steps)


class ExploreFails(NoisyQuadratic):
    def set_hparams(self, hparams):
        if getattr(self, "_set", False) and hparams.get("lr") != self.get_hparams()["lr"]:
            raise ValueError("cannot take a new lr")
        self._set = True
        super().set_hparams(hparams)


class NeverBuilds(NoisyQuadratic):
    def __init__(self, *a, **k):
        raise RuntimeError("this learner cannot be built")


class KeepsAGenerator(NoisyQuadratic):
    def get_state(self):
        return {**super().get_state(), "extra_rng": np.random.default_rng(0)}


class ReportsNaN(NoisyQuadratic):
    def train(self, steps):
        res = super().train(steps)
        res.episode_returns = [math.nan]
        return res


class DivergesAtHighLr(NoisyQuadratic):
    def train(self, steps):
        if self.get_hparams()["lr"] > 1.0:
            return TrainResult(steps, failed=f"{DIVERGED}: non-finite loss after an update")
        return super().train(steps)
'''

PPO_EXP = '''
import sweep_envs  # noqa: F401
from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="{name}", env="Sweep2d-v0", env_kwargs={kwargs!r},
    agent=Agent("ppo", hparams={{"rollout_steps": 32, "envs_per_actor": 2, "epochs": 1, "minibatch_size": 16}}),
    space={{"lr": LogUniform(1e-4, 1e-3)}}, strategy=PBT(population=2, ready_steps=64),
    total_steps=128, eval_steps=32)
'''

OWN_EXP = '''
from rlpop.experiment import FIRE, PBT, RandomSearch, Agent, Experiment
from rlpop.hparams import Choice, LogUniform

experiment = Experiment(name="{name}", env=None, agent=Agent("sweep_learners:{cls}"),
                        space={{"lr": {space}}}, strategy={strategy}, total_steps={total}, eval_steps=10)
'''

TOY_FIRE = str(ROOT / "experiments" / "toy_fire.py")
TINY_PPO = str(DATA / "tiny_ppo.py")


@dataclass
class Case:
    name: str
    klass: str                   # the class (item) it belongs to
    argv: list[str]              # after `python -m`
    rc: int | tuple[int, ...]    # the README's exit code(s)
    needle: str                  # words the message line must hold
    dir_allowed: bool = True     # may a run directory be left (False: bad input)
    runs: str = ""               # the runs dir the case may write to (checked when dir_allowed is False)
    signal: str | None = None    # "kill" | "int" | "term": sent once the run has trained a round
    signal_group: bool = False   # to the process group (a terminal's Ctrl-C), else to the driver only
    wait_for: str = ""           # a file (glob under runs) whose appearance means "a round was trained"
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300
    ray: bool = False
    needs: str = ""              # why the case cannot run here, when it cannot (set by setup)
    check: Callable[[str, str], str] | None = None  # extra judgement on (stdout, stderr): "" or what is wrong


# ------------------------------------------------------------------------------------------------ running
def _marked(mark: str) -> list:
    import psutil

    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get(MARK) == mark and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.Error, OSError):
            pass
    return out


def _alive(procs: list) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def first_line(out: str, err: str) -> str:
    for text in (err, out):
        for ln in text.splitlines():
            if ln.startswith(("error:", "warning:", "interrupted", "terminated")) or ln.startswith("round ") and "FAILED" in ln:
                return ln.strip()
    for ln in err.splitlines():
        if ln.strip():
            return ln.strip()
    return (out.strip().splitlines() or [""])[0]


def _runs_entries(runs: str) -> set[str]:
    p = Path(runs)
    return {str(x) for x in p.iterdir()} if runs and p.is_dir() else set()


def run_case(case: Case, cwd: Path) -> dict:
    import glob

    import psutil

    mark = uuid.uuid4().hex
    env = {**os.environ, MARK: mark, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), str(DATA), os.environ.get("PYTHONPATH", "")])),
           **case.env}
    before = _runs_entries(case.runs)
    argv = [sys.executable, "-m", *case.argv]
    t0 = time.monotonic()
    # files, not pipes: the embedded Ray cluster inherits them, and a pipe would stay open while any of it lives
    fout, ferr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fout, stderr=ferr, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    snapshot: list = []
    timed_out = False
    if case.signal:
        deadline = time.monotonic() + case.timeout
        while time.monotonic() < deadline and proc.poll() is None and not glob.glob(case.wait_for):
            time.sleep(0.2)  # polling an event (a file the run writes), not hoping for a duration
        if proc.poll() is None:
            try:
                snapshot = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                pass
            sig = {"kill": signal.SIGKILL, "int": signal.SIGINT, "term": signal.SIGTERM}[case.signal]
            (os.killpg if case.signal_group else os.kill)(proc.pid, sig)
    try:
        proc.wait(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    ended = time.monotonic()
    # what outlived it: marked processes, and the snapshot of its descendants (Ray's cluster)
    left: list = []
    while True:
        left = _alive(snapshot) + [p for p in _marked(mark) if p not in snapshot]
        if not left or time.monotonic() - ended > LEFT_AFTER_S:
            break
        time.sleep(0.1)
    gone_after = round(time.monotonic() - ended, 1)
    fout.seek(0)
    ferr.seek(0)
    out, err = fout.read(), ferr.read()
    fout.close()
    ferr.close()
    left_names = []
    for p in left:
        try:
            left_names.append(f"{p.pid}:{p.name()}")
        except psutil.Error:
            pass
        try:
            p.kill()  # the sweep leaves nothing behind either
        except psutil.Error:
            pass
    new_dirs = sorted(_runs_entries(case.runs) - before)
    rcs = case.rc if isinstance(case.rc, tuple) else (case.rc,)
    line = first_line(out, err)
    tb = "Traceback" in out + err
    dir_left = bool(new_dirs) and not case.dir_allowed
    problems = []
    if timed_out:
        problems.append(f"timed out after {case.timeout:.0f} s")
    if proc.returncode not in rcs:
        problems.append(f"exit {proc.returncode}, expected {'/'.join(map(str, rcs))}")
    if case.needle not in out + err:
        problems.append(f"no {case.needle!r}")
    if tb:
        problems.append("traceback")
    if dir_left:
        problems.append("run directory left")
    if left_names:
        problems.append(f"left running: {', '.join(left_names)}")
    if case.check is not None:
        extra = case.check(out, err)
        if extra:
            problems.append(extra)
    return {"case": case.name, "class": case.klass,
            "command": " ".join(shlex.quote(a) for a in ["python", "-m", *case.argv]),
            "exit_code": proc.returncode, "first_line": line[:300], "traceback": tb, "run_dir_left": dir_left,
            "processes_left": bool(left_names), "left": left_names, "gone_after_s": gone_after,
            "seconds": round(ended - t0, 1), "verdict": "clear" if not problems else "; ".join(problems)}


# ------------------------------------------------------------------------------------------------ the cases
def _ro_folder(base: Path) -> tuple[Path | None, Callable[[], None], str]:
    """A folder on a read-only file system (a read-only bind mount, as root) or without write permission (as a
    user): (folder, undo, why not)."""
    d = base / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        return d, lambda: d.chmod(0o755), ""
    res = subprocess.run(["mount", "--bind", "-o", "ro", str(d), str(d)], capture_output=True, text=True)
    if res.returncode != 0 or os.access(d, os.W_OK):
        return None, lambda: None, f"cannot make a read-only folder here ({res.stderr.strip() or 'still writable'})"
    return d, lambda: subprocess.run(["umount", str(d)], capture_output=True), ""


def _finished_toy_run(base: Path, name: str, extra: list[str] = ()) -> Path:
    """A finished toy FIRE run (seconds) to damage."""
    runs = base / name
    subprocess.run([sys.executable, "-m", "rlpop.run", TOY_FIRE, "--runs-dir", str(runs), "--quiet",
                    "--set", "total_steps=300", *extra], check=True, capture_output=True, cwd=ROOT)
    (run,) = runs.iterdir()
    return run


def _unfinish(run: Path) -> None:
    st = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**st, "finished": False}))


def cases(base: Path, undo: list[Callable[[], None]]) -> list[Case]:
    (base / "sweep_envs.py").write_text(ENVS)
    (base / "sweep_learners.py").write_text(LEARNERS)
    runs = str(base / "runs")

    def ppo_exp(name: str, **kwargs) -> str:
        p = base / f"{name}.py"
        p.write_text(PPO_EXP.format(name=name, kwargs=kwargs))
        return str(p)

    def own_exp(name: str, cls: str, strategy: str = "PBT(population=2, ready_steps=20)", total: int = 40,
                space: str = "LogUniform(0.05, 0.5)") -> str:
        p = base / f"{name}.py"
        p.write_text(OWN_EXP.format(name=name, cls=cls, strategy=strategy, total=total, space=space))
        return str(p)

    def run(exp: str, *more: str, runs_dir: str = runs) -> list[str]:
        return ["rlpop.run", exp, "--runs-dir", runs_dir, "--quiet", *more]

    long_toy = base / "long_toy.py"
    long_toy.write_text(OWN_EXP.format(name="long_toy", cls="DivergesAtHighLr", strategy="PBT(population=2, "
                                       "ready_steps=20)", total=10**8, space="LogUniform(0.05, 0.5)"))
    long_ppo = base / "long_ppo.py"
    long_ppo.write_text((DATA / "tiny_pbt.py").read_text().replace("total_steps=2048", "total_steps=10**8"))
    out: list[Case] = []
    add = out.append

    # ---- bad input: exit 2, one line, no run directory
    spec = dict(rc=2, dir_allowed=False, runs=runs)
    add(Case("fire-evaluators-over-parents", "4 silent", run(TOY_FIRE, "--set", "strategy.subpop_size=2",
             "--set", "strategy.evaluators=5"), needle="would never run; set evaluators <= 2", **spec))
    add(Case("ready-steps-negative", "5 wrong fix", run(TOY_FIRE, "--set", "strategy.ready_steps=-512"),
             needle="strategy.ready_steps=-512 must be a whole number of actor steps >= 1", **spec))
    add(Case("env-reset-raises", "5 traceback", run(ppo_exp("reset0", ok_resets=0)),
             needle="reset() raised RuntimeError: boom: reset failed", **spec))
    add(Case("env-reset-obs-contradicts-space", "5 traceback", run(ppo_exp("obs3", obs_dim=3)),
             needle="reset() returned an observation of shape (3,)", **spec))
    add(Case("env-step-obs-contradicts-space", "5 traceback", run(ppo_exp("stepobs5", step_obs_dim=5)),
             needle="step() returned an observation of shape (5,)", **spec))
    add(Case("learner-missing-protocol-methods", "5 traceback", run(own_exp("nostate", "NoStateMethods")),
             needle="lacks get_state, set_state, close of the learner protocol", **spec))
    add(Case("dry-run-wrong-env-kwargs", "5 traceback", ["rlpop.run", TINY_PPO, "--set", "env_kwargs.length=oops",
             "--dry-run"], needle="cannot be built", check=lambda o, e: "plan printed" if o.strip() else "", **spec))
    add(Case("max-grad-norm-0", "4 silent (done)", run(TINY_PPO, "--set", "agent.hparams.max_grad_norm=0"),
             needle="agent.hparams.max_grad_norm=0: expected a number > 0", **spec))
    add(Case("dict-observation-space", "5 late (done)", run(TINY_PPO, "--set", "env=space_envs:DictObs-v0"),
             needle="FlattenObservation", **spec))
    add(Case("unreachable-address", "earlier (done)", run(TOY_FIRE, "--address", "127.0.0.1:1"),
             needle="no Ray cluster answers there", **spec))
    a_file = base / "a file"
    a_file.write_text("not a folder")
    add(Case("runs-dir-is-a-file", "5 traceback", ["rlpop.run", TOY_FIRE, "--runs-dir", str(a_file / "runs")],
             rc=2, needle="is a file, not a folder; give another --runs-dir"))
    ro, un, why = _ro_folder(base)
    undo.append(un)
    add(Case("runs-dir-read-only", "5 traceback", ["rlpop.run", TOY_FIRE, "--runs-dir", str((ro or base) / "runs")],
             rc=2, needle="is on a read-only file system" if os.geteuid() == 0 else "not writable", needs=why))
    add(Case("experiment-file-missing", "earlier (done)", run(str(base / "nope.py")), needle="not found", **spec))
    add(Case("resume-not-a-run", "earlier (done)", ["rlpop.run", "--resume", str(base)], rc=2,
             needle="config.json"))

    # ---- resume / run directory damage
    noexp = _finished_toy_run(base, "runs-noexp")
    _unfinish(noexp)
    (noexp / "experiment.py").unlink()
    add(Case("resume-without-experiment-py", "5 wrong message", ["rlpop.run", "--resume", str(noexp)], rc=2,
             needle="experiment.py is missing, so the run cannot be rebuilt; copy the file it was started from"))
    add(Case("replay-without-experiment-py", "5 wrong message", ["rlpop.replay", str(noexp), "--runs-dir", runs],
             needle="copy the file it was started from", **spec))
    ckfile = _finished_toy_run(base, "runs-ckfile")
    _unfinish(ckfile)
    shutil.rmtree(ckfile / "checkpoints")
    (ckfile / "checkpoints").write_text("a file where a folder should be")
    add(Case("resume-checkpoints-is-a-file", "5 traceback", ["rlpop.run", "--resume", str(ckfile)], rc=2,
             needle="checkpoints is a file where the run keeps a folder"))
    if ro is not None:
        ro_runs = base / "runs-ro"
        src = _finished_toy_run(base, "runs-ro-src")
        _unfinish(src)
        ro_runs.mkdir()
        shutil.copytree(src, ro_runs / src.name)
        if os.geteuid() == 0:
            res = subprocess.run(["mount", "--bind", "-o", "ro", str(ro_runs), str(ro_runs)], capture_output=True)
            if res.returncode == 0:
                undo.append(lambda: subprocess.run(["umount", str(ro_runs)], capture_output=True))
        else:
            (ro_runs / src.name).chmod(0o555)
            undo.append(lambda: (ro_runs / src.name).chmod(0o755))
        add(Case("resume-read-only-run-dir", "5 traceback", ["rlpop.run", "--resume", str(ro_runs / src.name)],
                 rc=2, needle="give a folder you can write"))
    finished = _finished_toy_run(base, "runs-finished")
    add(Case("resume-finished-run", "earlier (done)", ["rlpop.run", "--resume", str(finished)], rc=0,
             needle="this run already finished"))
    dry = _finished_toy_run(base, "runs-dry")
    _unfinish(dry)
    rows_before = (dry / "curves.csv").read_bytes()
    add(Case("resume-dry-run-trains-nothing", "4 silent (done)", ["rlpop.run", "--resume", str(dry), "--dry-run"],
             rc=0, needle="continues it", check=lambda o, e: "" if (dry / "curves.csv").read_bytes() == rows_before
             else "it trained"))

    # ---- partial curves.csv: said in one line, summary not finished
    def partial_run(name: str, how: str) -> Path:
        r = _finished_toy_run(base, name)
        p = r / "curves.csv"
        data = p.read_bytes()
        p.write_bytes(data[:len(data) // 2] if how == "cut" else b"".join(data.splitlines(True)[:-4]))
        return r

    cut, rows = partial_run("runs-cut", "cut"), partial_run("runs-rows", "rows")
    summary_csv = base / "summary.csv"

    def not_finished(o: str, e: str) -> str:
        import csv

        with open(summary_csv) as f:
            row = next(csv.DictReader(f))
        return "" if row["finished"] == "False" else f"summary says finished={row['finished']}"

    add(Case("summary-curves-cut-mid-file", "4 silent", ["rlpop.summary", str(cut), "--out", str(summary_csv)],
             rc=0, needle="curves.csv is partial (its last row is cut", check=not_finished))
    add(Case("summary-curves-rows-missing", "4 silent", ["rlpop.summary", str(rows), "--out", str(summary_csv)],
             rc=0, needle="member rows are missing", check=not_finished))
    add(Case("plot-curves-cut", "4 silent", ["rlpop.plot", str(cut), "--out", str(base / "plots")], rc=0,
             needle="curves.csv is partial"))
    add(Case("lineage-curves-cut", "4 silent", ["rlpop.lineage", str(cut)], rc=0, needle="curves.csv is partial"))
    add(Case("replay-curves-cut", "4 silent", ["rlpop.replay", str(cut), "--runs-dir", str(base / "replays")],
             rc=0, needle="curves.csv is partial"))

    # ---- a run that fails: exit 1, one error line
    add(Case("env-reset-raises-on-rebuild", "5 traceback", run(ppo_exp("reset1", ok_resets=1)), rc=1,
             needle="its rebuild from the last checkpoint failed too"))
    add(Case("env-step-raises", "earlier (done)", run(ppo_exp("stepraise", step_raises=True)), rc=1,
             needle="every member failed and was dropped"))
    add(Case("train-returns-none", "5 wrong message", run(own_exp("none", "ReturnsNone")), rc=1,
             needle="ReturnsNone.train() returned NoneType, not a TrainResult"))
    add(Case("error-outside-the-workers", "new", run(own_exp("explore", "ExploreFails",
             "PBT(population=4, ready_steps=20)", 100)), rc=1, needle="error: the run stopped (last round recorded:"))
    add(Case("workers-cannot-start", "new", run(own_exp("never", "NeverBuilds")), rc=1,
             needle="(nothing trained; no run directory kept)", dir_allowed=False, runs=runs))
    add(Case("learner-state-not-plain", "3 (done)", run(own_exp("gen", "KeepsAGenerator")), rc=(1, 2),
             needle="cannot be checkpointed"))
    add(Case("q-never-finite", "4 silent (done)", run(own_exp("nanq", "ReportsNaN", "RandomSearch(population=2)")),
             rc=1, needle="no member reported a finite Q"))
    add(Case("fire-divergence-loop", "1 (done)", run(own_exp("div", "DivergesAtHighLr",
             "FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=20, max_eval_steps=100)", 400,
             "Choice([0.1, 10])")), rc=(0, 1), needle="finished:"))

    # ---- commands printed for a path with spaces
    spaced = str(base / "my runs")

    def quoted(o: str, e: str) -> str:
        nxt = [ln for ln in o.splitlines() if ln.startswith("next: rlpop evaluate")]
        if not nxt:
            return "no next command"
        words = shlex.split(nxt[0][len("next: "):].split("(")[0])
        return "" if len(words) == 3 and words[2].startswith(spaced) else f"not one shell word: {nxt[0]}"

    add(Case("next-commands-shell-quoted", "5 quoting", run(TOY_FIRE, "--set", "total_steps=300", runs_dir=spaced),
             rc=0, needle="next: rlpop evaluate", check=quoted))

    # ---- signals: inline
    words = {"int": ("ctrl-c", "interrupted:"), "kill": ("kill-9", ""), "term": ("sigterm", "terminated (SIGTERM):")}
    for sig, rc in (("int", 130), ("kill", -9), ("term", 143)):  # each its own runs dir: its own run's first row
        own = str(base / f"runs-inline-{sig}")
        add(Case(f"inline-{words[sig][0]}", "earlier (done)" if sig != "term" else "new",
                 run(str(long_ppo), "--set", "agent.hparams.num_actors=1", runs_dir=own), rc=rc,
                 needle=words[sig][1], signal=sig, signal_group=sig == "int", wait_for=f"{own}/tiny_pbt-*/curves.csv"))

    # ---- Ray (slow)
    ray = dict(ray=True, timeout=300)
    add(Case("address-auto-without-cluster", "5 empty run dir", run(TOY_FIRE, "--address", "auto"), rc=2,
             needle="--address auto: no Ray cluster runs on this machine", dir_allowed=False, runs=runs, **ray))
    add(Case("ray-env-reset-raises-on-rebuild", "5 traceback", run(ppo_exp("reset1ray", ok_resets=1), "--backend",
             "ray"), rc=1, needle="its rebuild from the last checkpoint failed too", **ray))
    words = {"kill": ("kill-9", ""), "int": ("ctrl-c", "interrupted:"), "term": ("sigterm", "terminated (SIGTERM):")}
    for sig, rc, group in (("kill", -9, False), ("int", 130, True), ("term", 143, False)):
        own = str(base / f"runs-ray-{sig}")
        add(Case(f"ray-driver-{words[sig][0]}", "6 orphans", run(str(long_toy), "--backend", "ray", runs_dir=own),
                 rc=rc, needle=words[sig][1], signal=sig, signal_group=group,
                 wait_for=f"{own}/long_toy-*/curves.csv", **ray))
    return out


def _address_auto_check(case: Case) -> None:
    """`--address auto` joins any Ray cluster running on this machine (Ray's discovery): with one running (another
    user's), this case cannot show the no-cluster message; say so instead of judging."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001
        found = None
    if found:
        case.needs = f"a Ray cluster runs on this machine ({found}): --address auto joins it"


def to_markdown(rows: list[dict]) -> str:
    head = "| case | command | exit | first line of the message | traceback | run dir left | processes left | verdict |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        msg = r["first_line"].replace("|", "\\|")
        cmd = r["command"].replace(str(ROOT) + "/", "").replace("|", "\\|")
        lines.append(f"| {r['case']} | `{cmd[:140]}` | {r['exit_code']} | {msg[:160]} | "
                     f"{'yes' if r['traceback'] else 'no'} | {'yes' if r['run_dir_left'] else 'no'} | "
                     f"{'yes' if r['processes_left'] else 'no'} ({r['gone_after_s']} s) | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="run only these cases (names)")
    p.add_argument("--skip-ray", action="store_true", help="leave out the Ray cases (the slow ones)")
    p.add_argument("--out", default=str(RESULTS_DIR / "failure_sweep.json"))
    args = p.parse_args(argv)
    info = machine_info()
    base = Path(tempfile.mkdtemp(prefix="rlpop-failure-sweep-"))
    undo: list[Callable[[], None]] = []
    rows = []
    try:
        all_cases = cases(base, undo)
        for case in all_cases:
            if args.only and case.name not in args.only or args.skip_ray and case.ray:
                continue
            if case.name == "address-auto-without-cluster":
                _address_auto_check(case)
            if case.needs:
                rows.append({"case": case.name, "class": case.klass, "command": "", "exit_code": None,
                             "first_line": "", "traceback": False, "run_dir_left": False, "processes_left": False,
                             "left": [], "gone_after_s": 0.0, "seconds": 0.0, "verdict": f"not run: {case.needs}"})
                continue
            row = run_case(case, base)
            rows.append(row)
            print(f"{row['case']:<40} exit {row['exit_code']!s:>4}  {row['seconds']:>6.1f} s  {row['verdict']}",
                  flush=True)
    finally:
        for u in reversed(undo):
            u()
        shutil.rmtree(base, ignore_errors=True)
    clear = sum(1 for r in rows if r["verdict"] == "clear")
    ran = sum(1 for r in rows if not r["verdict"].startswith("not run"))
    write_json(args.out, {"machine": info, "cases": len(rows), "ran": ran, "clear": clear, "rows": rows})
    print()
    print(to_markdown(rows))
    print(f"\n{clear} of {ran} cases clear ({len(rows) - ran} not run); wrote {args.out}")
    return 0 if clear == ran else 1


if __name__ == "__main__":
    sys.exit(main())
