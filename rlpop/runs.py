"""``rlpop.load_run(path)``: a run directory, read from Python -- the one reader of a run directory.

::

    import rlpop

    run = rlpop.load_run("runs/quick_fire-20260101-120000")
    run.curves            # pandas DataFrame: one row per Q evaluation (curves.csv)
    run.metrics           # learner diagnostics (metrics.csv)
    run.decisions         # exploits, explores, evaluator events (decisions.jsonl)
    run.config            # the resolved experiment (config.json)
    run.best()            # Best(member=3, q=..., step=..., round=..., subpop=1, hparams={...}, checkpoint='best')
    run.lineage()         # the best final member's hparam schedule back through its copies
    policy = run.policy() # numpy observation(s) -> action(s), deterministic
    run.evaluate(episodes=10, seed=0)

``plot``, ``summary``, ``lineage`` and ``replay`` read run directories through :class:`Run`. A run in progress
reads too (a half-written last row is left out; checkpoints are replaced atomically), and so does a resumed one.

Which member, which weights (``member=``, ``checkpoint=``):

- ``checkpoint="best"``: the state a sub-population's best member had at the round of its best Q, which the
  run keeps beside its last checkpoints (``checkpoints/best-P<n>.pt``, indexed by ``checkpoints/best.json``);
  ``member="best"`` is the kept state with the highest Q over the sub-populations, ``member=ID`` the kept state
  of worker ID (it must be one sub-population's best);
- ``checkpoint="latest"``: the newest checkpoint; ``member="best"`` is the member with the highest Q at that
  checkpoint, ``member=ID`` worker ID's state there;
- ``checkpoint=None`` (default): ``"best"`` when the run kept one, else ``"latest"``.
"""
from __future__ import annotations

import io
import json
import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlpop.store import BEST_INDEX, RunDir, RunDirError

if TYPE_CHECKING:
    import pandas as pd

    from rlpop.policy import Policy

CHECKPOINTS = ("best", "latest")


@dataclass(frozen=True)
class Best:
    """A member's state picked from a run: who, its Q, its actor step, the round, its hparams, which checkpoint."""

    member: int
    q: float
    step: int
    round: int
    subpop: int | None
    hparams: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "best"


# --------------------------------------------------------------------------- tables
def read_curves(run_dir: str | Path) -> pd.DataFrame:
    """curves.csv, without a half-written last row (a run in progress or a crash cut it); ``round``, ``worker``
    and ``step`` as integers, ``q`` as floats. Raises :class:`RunDirError` when there is no Q row yet."""
    import pandas as pd  # here, not at the top: a CLI error needs no pandas

    run = Path(run_dir)
    path = run / "curves.csv"
    if not path.is_file():
        raise RunDirError(f"{run} has no Q evaluations yet (no curves.csv): a run writes them from its first round")
    try:
        curves = _read_csv(path)
    except (pd.errors.ParserError, OSError) as exc:
        raise RunDirError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None
    if curves.empty:
        raise RunDirError(f"{run} has no Q evaluations yet ({path.name} has no complete row): a run writes them "
                          "from its first round")
    missing = [c for c in ("round", "worker", "role", "step", "q") if c not in curves.columns]
    if missing:
        raise RunDirError(f"{path} is not an rlpop curve table (no column {', '.join(missing)})")
    n = len(curves)
    for c in ("round", "worker", "step"):  # a garbled row: not a number where one must be
        curves[c] = pd.to_numeric(curves[c], errors="coerce")
    curves = curves.dropna(subset=["round", "worker", "step"])
    curves["q"] = pd.to_numeric(curves["q"], errors="coerce")
    for c in ("round", "worker", "step"):
        curves[c] = curves[c].astype(int)
    curves.attrs["unreadable_rows"] = n - len(curves)
    return curves


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    text = path.read_text(errors="replace")
    if text and not text.endswith("\n"):  # its last row may be half written
        text = text[:text.rfind("\n") + 1]
    return pd.read_csv(io.StringIO(text)) if text.strip() else pd.DataFrame()


#: the partial-curves warnings this process has printed (each once)
_SAID: set[str] = set()


def curves_gap(run_dir: str | Path, curves: pd.DataFrame, status: dict[str, Any], decisions: list[dict],
               config: dict[str, Any] | None = None) -> str | None:
    """Why curves.csv holds less than the run recorded, in one line, or None: rows that do not parse, a last row
    cut in a finished run (its writer ended), rows that stop before the round that status.json or
    decisions.jsonl reached (a file cut, or rows deleted), or a member's row missing from a round it trained in
    (rounds are synchronous: a member with budget left trains in the next round unless it failed there). A round
    whose every worker failed writes no row: the failures of decisions.jsonl count as its rows."""
    path = Path(run_dir) / "curves.csv"
    problems = []
    try:
        text = path.read_bytes()
    except OSError:
        return None
    if status.get("finished") and text and not text.endswith(b"\n"):
        problems.append("its last row is cut")
    bad = int(curves.attrs.get("unreadable_rows", 0))
    if bad:
        problems.append(f"{bad} row{'s' if bad > 1 else ''} do not parse")
    made = [int(d["round"]) for d in decisions if isinstance(d.get("round"), int) and d.get("kind") != "failure"]
    recorded = max([int(status.get("round") or 0), *made])
    failed = [int(d["round"]) for d in decisions if isinstance(d.get("round"), int) and d.get("kind") == "failure"]
    last = max([int(curves["round"].max()) if len(curves) else 0, *failed])
    if last < recorded:
        problems.append(f"its rows stop at round {last}, but the run recorded round {recorded} (status.json, "
                        "decisions.jsonl)")
    else:
        lost = _rows_missing(curves, decisions, config or {})
        if lost:
            problems.append(f"{lost} member row{'s are' if lost > 1 else ' is'} missing from rounds the members "
                            "trained in")
    if not problems:
        return None
    return (f"{path} is partial ({'; '.join(problems)}): what follows uses partial data, and the run does not "
            "count as finished")


def _rows_missing(curves: pd.DataFrame, decisions: list[dict], config: dict[str, Any]) -> int:
    """Members with a row in round r, budget left and no failure in round r+1 that have no row in round r+1
    (up to curves' last round); 0 for trial-based strategies, whose slots restart and stop."""
    total, every = config.get("total_steps"), config.get("eval_steps")
    if config.get("method") not in ("single", "rs", "pbt", "fire", "pb2", "replay") or not total or not every:
        return 0
    m = curves[curves["role"] == "member"]
    have = set(zip(m["round"], m["worker"]))
    failed = {(d.get("round"), d.get("worker")) for d in decisions if d.get("kind") == "failure"}
    last = int(curves["round"].max()) if len(curves) else 0
    return sum(1 for r, w, s in zip(m["round"], m["worker"], m["step"])
               if r < last and s + every <= total and (r + 1, w) not in have and (r + 1, w) not in failed)


def read_decisions(run_dir: str | Path) -> list[dict]:
    """The decision records of decisions.jsonl, in order (a line cut by a crash or a run in progress is skipped)."""
    path = Path(run_dir) / "decisions.jsonl"
    out = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def best_final_member(curves: pd.DataFrame) -> int:
    """The member with the highest Q at its last evaluation."""
    members = curves[curves["role"] == "member"]
    if members.empty:
        raise RunDirError("the run has no member evaluated yet (curves.csv has only evaluator rows)")
    last = members.sort_values("round").groupby("worker").tail(1)
    return int(last.sort_values(["q", "worker"], ascending=[False, True]).iloc[0]["worker"])


def parse_member(value: Any, flag: str = "--member") -> int | str:
    """``"best"`` or a worker id (``3``, ``"3"``, ``"w3"``); ValueError (one line) otherwise."""
    if value is None or value == "best":
        return "best"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    s = str(value).strip()
    s = s[1:] if s[:1] in ("w", "W") else s
    try:
        return int(s)
    except ValueError:
        raise ValueError(f"{flag} {value!r}: give 'best' or a worker id (e.g. 3 or w3)") from None


# --------------------------------------------------------------------------- the run
class Run:
    """One run directory, read lazily (each table once). See the module docstring."""

    def __init__(self, path: str | Path, check: bool = True):
        self.rd = RunDir(path)
        if check:  # (check=False: a folder with only the tables, as a test or a tool writes them)
            self.rd.check_is_run_dir()
        self.path = self.rd.path
        self.name = self.path.name
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _cached(self, key: str, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # -- what the run recorded ----------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """config.json: the resolved experiment and how it was started."""
        return self._cached("config", self.rd.read_config)

    @property
    def status(self) -> dict[str, Any]:
        """status.json (round, finished, wall, counts); {} before the first checkpoint."""
        return self._cached("status", self.rd.read_status)

    @property
    def finished(self) -> bool:
        """status.json says the run finished, and its curves are whole (:attr:`partial`)."""
        if not self.status.get("finished", False):
            return False
        try:
            return self.partial is None
        except RunDirError:
            return False

    @property
    def partial(self) -> str | None:
        """Why curves.csv holds less than the run recorded (one line), or None (:func:`curves_gap`)."""
        def gap():
            try:
                status = self.status
            except RunDirError:
                status = {}
            try:
                config = self.config
            except (RunDirError, ValueError, OSError):
                config = {}
            return curves_gap(self.path, self._cache["curves"] if "curves" in self._cache else self.curves, status,
                              self.decision_records, config)

        return self._cached("partial", gap)

    @property
    def method(self) -> str:
        return str(self.config.get("method", "other"))

    @property
    def curves(self) -> pd.DataFrame:
        """One row per Q evaluation (curves.csv). Raises :class:`RunDirError` before the first row."""
        if "curves" not in self._cache:
            self._cache["curves"] = read_curves(self.path)
            gap = self.partial
            if gap and gap not in _SAID:  # every reader (plot, summary, lineage, replay) says it, once
                _SAID.add(gap)
                print(f"warning: {gap}", file=sys.stderr)
        return self._cache["curves"]

    @property
    def metrics(self) -> pd.DataFrame:
        """Learner diagnostics (metrics.csv); empty when the learner reports none (yet)."""
        import pandas as pd

        def read():
            path = self.path / "metrics.csv"
            if not path.is_file():
                return pd.DataFrame()
            try:
                return _read_csv(path)
            except (pd.errors.ParserError, OSError) as exc:
                raise RunDirError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None
        return self._cached("metrics", read)

    @property
    def decision_records(self) -> list[dict]:
        """decisions.jsonl as a list of records, in order."""
        return self._cached("decision_records", lambda: read_decisions(self.path))

    @property
    def decisions(self) -> pd.DataFrame:
        """decisions.jsonl as a DataFrame (one row per record; columns: the union of the records' fields)."""
        import pandas as pd

        return self._cached("decisions", lambda: pd.DataFrame(self.decision_records))

    # -- members ----------------------------------------------------------------------------
    def best_final_member(self) -> int:
        """The member with the highest Q at its last evaluation (what lineage, replay and summary trace)."""
        return best_final_member(self.curves)

    def lineage(self, member: int | str | None = None) -> pd.DataFrame:
        """The hparam schedule of ``member`` (default / ``"best"``: the best final member) back through every copy
        (:func:`rlpop.lineage.trace`)."""
        from rlpop.lineage import trace

        m = parse_member(member, "member")
        return trace(self.curves, self.decision_records, None if m == "best" else m, self.path)

    def kept_best(self) -> dict[int | None, dict[str, Any]]:
        """The kept best states, by sub-population: {subpop: {worker, q, step, round, hparams, file}}."""
        return self.rd.read_best_index()

    def has_checkpoint(self) -> bool:
        return bool(self.kept_best()) or self.rd.latest_checkpoint() is not None

    def best(self, checkpoint: str | None = None) -> Best:
        """The best member: the kept best state with the highest Q (``checkpoint="best"``; the default when the
        run kept one), else the member with the highest Q at the latest checkpoint."""
        return self._pick("best", checkpoint)[0]

    def member_state(self, member: int | str = "best", checkpoint: str | None = None
                     ) -> tuple[Best, dict[str, Any]]:
        """``(Best, learner state)`` of ``member`` at ``checkpoint`` (see the module docstring)."""
        return self._pick(parse_member(member), checkpoint, load=True)

    def _pick(self, member: int | str, checkpoint: str | None, load: bool = False):
        if checkpoint not in (None, *CHECKPOINTS):
            raise ValueError(f"--checkpoint {checkpoint!r}: give 'best' or 'latest'")
        kept = self.kept_best()
        if checkpoint is None:
            checkpoint = "best" if kept else "latest"
        if checkpoint == "best":
            return self._pick_kept(member, kept, load)
        return self._pick_latest(member, load)

    def _no_state(self) -> RunDirError:
        return RunDirError(
            f"{self.path} has no checkpoint with a trained member yet (the run stopped before its first "
            f"checkpoint interval ended): resume it with `rlpop run --resume {shlex.quote(str(self.path))}` and let it train, or "
            "pick a run that trained longer")

    def _pick_kept(self, member, kept, load):
        if not kept:
            self._pick_latest("best", load=False)  # no trained member at all: says so
            raise RunDirError(f"{self.path} kept no best state (a run made before rlpop kept one, or stopped before "
                              "its first Q): use --checkpoint latest (python: checkpoint='latest')")
        entries = sorted(kept.values(), key=lambda e: (-_q(e["q"]), e["worker"]))
        if member == "best":
            e = entries[0]
        else:
            found = [e for e in entries if int(e["worker"]) == member]
            if not found:
                names = ", ".join(f"w{e['worker']} ({_sp(e['subpop'])}, Q={_q(e['q']):.4g})" for e in entries)
                raise RunDirError(f"member {member} has no kept best state in {self.path} (kept: {names}); give one "
                                  f"of those, or --checkpoint latest for w{member}'s last checkpointed state")
            e = found[0]
        best = Best(int(e["worker"]), _q(e["q"]), int(e["step"]), int(e["round"]),
                    None if e.get("subpop") is None else int(e["subpop"]), dict(e.get("hparams") or {}), "best")
        if not load:
            return best, None
        payload = self.rd.load_checkpoint(self.path / "checkpoints" / e["file"])
        return best, payload["worker_state"]["learner"]

    def _pick_latest(self, member, load):
        path, payload, _ = self.rd.load_latest_checkpoint()
        if payload is None:
            raise self._no_state()
        records = payload["controller"]["records"]
        states = {int(k): v for k, v in payload["workers"].items()}
        recs = {int(k): v for k, v in records.items()}
        members = {i: r for i, r in recs.items() if r["role"] == "member"}
        if not any(i in states for i in members):
            raise self._no_state()
        if member == "best":
            cands = [(i, r) for i, r in members.items() if i in states and math.isfinite(_q(r["q"]))]
            if not cands:
                cands = [(i, r) for i, r in members.items() if i in states]
            i, r = max(cands, key=lambda ir: (_q(ir[1]["q"]) if math.isfinite(_q(ir[1]["q"])) else -math.inf,
                                              -ir[0]))
        else:
            if member not in recs:
                raise RunDirError(f"member {member} is not a worker of {self.path} (members: "
                                  f"{', '.join(f'w{i}' for i in sorted(members))}); give one of those or 'best'")
            if member not in states:
                raise RunDirError(f"w{member} has no state in {path.name} (it had not trained yet, or was dropped); "
                                  "give another member or 'best'")
            i, r = member, recs[member]
        best = Best(i, _q(r["q"]), int(states[i]["steps"]), int(payload["controller"]["round"]), r.get("subpop"),
                    dict(r.get("hparams") or {}), "latest")
        return best, (states[i]["learner"] if load else None)

    # -- the agent ----------------------------------------------------------------------------
    @property
    def learner(self) -> str:
        return str((self.config.get("agent") or {}).get("learner", ""))

    def env_spec(self) -> dict[str, Any]:
        """What builds the run's env: ``{"env", "env_kwargs", "env_wrappers"}``."""
        cfg = self.config
        return {"env": cfg.get("env"), "env_kwargs": dict(cfg.get("env_kwargs") or {}),
                "env_wrappers": [list(w) for w in cfg.get("env_wrappers") or []]}

    def make_env(self, **extra: Any):
        """One env as the run built it (its kwargs and wrappers); a custom env is registered first
        (:func:`rlpop.policy.ensure_env`)."""
        from rlpop.policy import make_run_env

        return make_run_env(self, **extra)

    def policy(self, member: int | str = "best", checkpoint: str | None = None) -> Policy:
        """The member's policy: a callable numpy observation(s) -> action(s) (deterministic unless called with
        ``deterministic=False``); see :mod:`rlpop.policy`."""
        from rlpop.policy import policy_from_run

        return policy_from_run(self, member, checkpoint)

    def evaluate(self, member: int | str = "best", episodes: int = 10, seed: int = 0, stochastic: bool = False,
                 video: str | Path | None = None, checkpoint: str | None = None) -> dict[str, Any]:
        """Play the member's policy on ``episodes`` fresh episodes (episode i reset with seed ``seed + i``);
        returns ``{"returns", "lengths", "mean_return", "std_return", "mean_length", ...}``."""
        from rlpop.evaluate import evaluate_policy

        pol = self.policy(member, checkpoint)
        return evaluate_policy(pol, episodes=episodes, seed=seed, stochastic=stochastic, video=video)


def _q(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _sp(sp: Any) -> str:
    return "members" if sp is None else f"P{sp}"


def load_run(path: str | Path) -> Run:
    """Open a run directory (finished, in progress or resumed). Raises :class:`rlpop.store.NotARunDirError`
    (one line) for a directory that is not a run."""
    return Run(path)


__all__ = ["Best", "Run", "load_run", "read_curves", "read_decisions", "best_final_member", "BEST_INDEX"]
