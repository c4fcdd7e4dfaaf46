"""The controller loop: train a round, record Q, ask the strategy, carry out its decisions.

Rounds are synchronous: every live member (and every assigned evaluator)
trains ``eval_steps`` actor steps, each appends one (step, Q) point to its
curve, then the strategy decides. A worker that fails or stalls past
``worker_timeout_s`` is rebuilt from the last checkpoint (the log says so); a
second failure in the same interval drops it and the run goes on.

The controller writes the run directory (curves, metrics, decisions,
checkpoints) and tells everything else through :mod:`rlpop.events`: the live
display, TensorBoard, the failure lines on stderr and the benchmarks'
timers are listeners (``subscribe``), not readers of its attributes.
"""
from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlpop.backends.base import Backend
from rlpop.decisions import (AssignEvaluator, Decision, EvaluatorSuccess, Exploit, Explore, FollowCopy, RestartTrial,
                             StopEvaluator, StopTrial, describe, to_record)
from rlpop.streams import member_seed
from rlpop.agents.widths import width_notes
from rlpop.events import (CheckpointSaved, DecisionApplied, Event, Listener, RoundFinished, RunInfo, RunStarted,
                          WorkerFailed, WorkerStatus, stderr_failures)
from rlpop.experiment import Experiment
from rlpop.store import CURVE_FIELDS, RunDir
from rlpop.view import EVALUATOR, MEMBER, PopulationView, WorkerView
from rlpop.worker import TrainReport, WorkerFailure, WorkerSpec, failure_line

METRIC_FIELDS = ["round", "worker", "step"]


@dataclass
class WorkerRecord:
    """The controller's bookkeeping of one worker (JSON-serialisable)."""

    id: int
    role: str
    subpop: int | None
    hparams: dict[str, Any]
    seed: int
    steps: int = 0
    curve_steps: list[int] = field(default_factory=list)
    curve_q: list[float] = field(default_factory=list)
    has_state: bool = False
    alive: bool = True
    assigned: bool = False  # evaluators: currently evaluating
    copies: int = 0
    failures: int = 0
    q: float = math.nan
    trial: int = 0        # trial-based strategies: restarts of this slot
    spent: int = 0        # actor steps of the slot's earlier trials
    stopped: bool = False  # its trial was stopped for good
    replaced_at: int = -1  # its step when it last diverged and was replaced by a peer's copy (-1: never)

    @property
    def used(self) -> int:
        """Actor steps the slot has used of its budget (every trial's)."""
        return self.spent + self.steps

    def view(self) -> WorkerView:
        return WorkerView(self.id, self.role, self.subpop, self.steps, dict(self.hparams),
                          np.asarray(self.curve_steps, float), np.asarray(self.curve_q, float),
                          self.has_state, self.alive, self.trial, self.spent, self.stopped, self.q)

    def reset_curve(self) -> None:
        self.curve_steps, self.curve_q = [], []

    def status(self) -> WorkerStatus:
        return WorkerStatus(self.id, self.role, self.subpop, self.steps, self.q, dict(self.hparams), self.copies,
                            self.alive, self.assigned, self.spent, self.trial, self.stopped)


class Controller:
    def __init__(self, exp: Experiment, run: RunDir, backend: Backend):
        self.exp = exp
        self.run_dir = run
        self.backend = backend
        self.strategy = exp.build_strategy()
        #: who hears the run's events (rlpop.events); failures go to stderr unless replaced
        self.listeners: list[Listener] = [stderr_failures]
        self.round = 0
        self.wall_offset = 0.0
        self.t_start = time.perf_counter()
        self.train_s = 0.0   # wall time spent inside backend.train
        self.counts = {"exploit": 0, "success": 0, "assign": 0, "stop": 0, "failure": 0, "stop_trial": 0,
                       "restart_trial": 0}
        self.space_names = list(exp.hparam_space().names)
        self.curve_fields = CURVE_FIELDS + ["hparams"] + [f"hp_{n}" for n in self.space_names]
        self.metric_fields: list[str] | None = None  # fixed by the first rows the learner reports
        self.records: dict[int, WorkerRecord] = {}
        self.last_results: dict[int, TrainReport] = {}
        for slot in self.strategy.layout():
            hp = self.strategy.initial_hparams(slot)
            self.records[slot.id] = WorkerRecord(slot.id, slot.role, slot.subpop, dict(hp),
                                                 seed=member_seed(exp.seed, slot.id))
        self._last_ckpt_states: dict[int, dict[str, Any]] = {}
        #: each sub-population's best Q so far, whose member's state the run directory keeps (RunDir.save_best)
        self.best_q: dict[int | None, float] = {}
        #: the first failure's one-line reason (the run's error when every member is dropped)
        self.first_failure: str | None = None
        self.ckpt_rounds = max(1, exp.checkpoint_steps // exp.eval_steps)
        self.info = RunInfo(exp.name, exp.method, exp.env, exp.agent.learner, int(exp.total_steps),
                            tuple(self.space_names), str(run.path))
        self._resumed = False
        self.start_s = 0.0  # building the workers (start)

    # ------------------------------------------------------------------ events
    def subscribe(self, listener: Listener, *, replace_console: bool = False) -> None:
        """Call ``listener(event)`` for every event of the run (see :mod:`rlpop.events`).
        ``replace_console``: the listener takes over the failure lines printed on stderr."""
        if replace_console and stderr_failures in self.listeners:
            self.listeners.remove(stderr_failures)
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    # ------------------------------------------------------------------ setup
    def spec(self, r: WorkerRecord) -> WorkerSpec:
        hp = {**self.exp.agent.hparams, **r.hparams}
        return WorkerSpec(r.id, self.exp.agent.learner, self.exp.env, hp, r.seed, dict(self.exp.env_kwargs),
                          self.exp.q_window_episodes)

    def start(self) -> None:
        t0 = time.perf_counter()
        self.backend.start([self.spec(r) for r in self.records.values()])
        self.start_s = time.perf_counter() - t0
        # the import heap (torch, gymnasium, ray) is long-lived: keep full collections from rescanning it
        gc.collect()
        gc.freeze()

    def resume(self, payload: dict[str, Any] | None) -> None:
        """Continue the run in its run directory from a checkpoint payload (``RunDir.load_latest_checkpoint``),
        after ``start``: controller, strategy and worker states are restored and the rows the run wrote
        after that checkpoint are cut, so the curves and decisions continue exactly. ``None`` (no checkpoint
        yet): start from the beginning."""
        self._resumed = True
        if payload is None:
            self.run_dir.truncate_after(0)
        else:
            self._restore(payload)
            self.run_dir.truncate_after(self.round)  # kept best states of later rounds go too
        self.best_q = {sp: float(e["q"]) for sp, e in self.run_dir.read_best_index().items()}

    def _restore(self, payload: dict[str, Any]) -> None:
        """Controller, strategy and worker states from a checkpoint payload."""
        c = payload["controller"]
        self.round = c["round"]
        self.wall_offset = c["wall"]
        self.train_s = c.get("train_s", 0.0)
        self.counts = c["counts"]
        self.records = {int(k): WorkerRecord(**v) for k, v in c["records"].items()}
        self.strategy.set_state(payload["strategy"])
        saved = {int(i): state for i, state in payload["workers"].items()}
        for r in self.records.values():
            if r.alive and r.id in saved:
                self.backend.restore(r.id, saved[r.id])
            if r.alive and (r.id in saved or r.trial):  # a restarted slot that has not trained yet: its trial's hparams
                self.backend.set_hparams(r.id, dict(r.hparams))
        self._last_ckpt_states = payload["workers"]

    # ------------------------------------------------------------------ loop
    def done(self) -> bool:
        members = [r for r in self.records.values() if r.role == MEMBER and r.alive]
        return not members or all(r.stopped or r.used >= self.exp.total_steps for r in members)

    def active_ids(self) -> list[int]:
        return [r.id for r in self.records.values()
                if r.alive and (r.role == MEMBER and not r.stopped and r.used < self.exp.total_steps
                                or r.role == EVALUATOR and r.assigned)]

    def wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self.t_start

    def step_round(self) -> list[Decision]:
        ids = self.active_ids()
        t0 = time.perf_counter()
        results = self.backend.train(ids, self.exp.eval_steps, self.exp.worker_timeout_s)
        t_train = time.perf_counter()
        self.train_s += t_train - t0
        self.round += 1
        self.last_results = {i: r for i, r in results.items() if isinstance(r, TrainReport)}
        curve_rows, metric_rows = [], []
        for i in ids:
            res = results[i]
            if isinstance(res, WorkerFailure):
                continue  # handled below, once every success of the round is recorded (a replacement's Q)
            r = self.records[i]
            metric_rows += self._metric_rows(r, res)
            r.steps, r.q, r.has_state = res.steps, res.q, True
            r.curve_steps.append(res.steps)
            r.curve_q.append(res.q)
            curve_rows.append(self._curve_row(r, res))
        for i in ids:
            if isinstance(results[i], WorkerFailure):
                self._handle_failure(results[i])
        self.run_dir.append_rows("curves.csv", self.curve_fields, curve_rows)
        self._keep_best(ids, results)  # before the decisions: a copy would replace the state that scored this Q
        if metric_rows:
            if self.metric_fields is None:
                self.metric_fields = METRIC_FIELDS + sorted({k for row in metric_rows for k in row} - set(METRIC_FIELDS))
            self.run_dir.append_rows("metrics.csv", self.metric_fields, metric_rows)
        t_record = time.perf_counter()
        # after the last round a decision would only copy weights nobody trains again
        decisions = [] if self.done() else self.strategy.decide(self.view())
        t_decide = time.perf_counter()
        for d in decisions:
            self.apply(d)
        t_apply = time.perf_counter()
        if self.round % self.ckpt_rounds == 0 or self.done():
            self.checkpoint()
        t_ckpt = time.perf_counter()
        self.emit(self.round_finished(decisions, {
            "train": t_train - t0, "record": t_record - t_train, "decide": t_decide - t_record,
            "apply": t_apply - t_decide, "checkpoint": t_ckpt - t_apply}))
        return decisions

    def round_finished(self, decisions: list[Decision] = (), timings: dict[str, float] | None = None
                       ) -> RoundFinished:
        """The record of the round just finished (also what a display shows before the first round)."""
        return RoundFinished(self.info, self.round, self.wall(), self.train_s, self.done(),
                             tuple(r.status() for r in self.records.values()), dict(self.counts),
                             dict(self.last_results), tuple(decisions), dict(timings or {}))

    def run(self) -> None:
        self.emit(RunStarted(self.info, self.round, self._resumed, self.round_finished(), self.start_s))
        if self.round == 0 and not self.run_dir.latest_checkpoint():
            self.checkpoint()  # round 0: initial weights, so a crash in round 1 can be restored
        while not self.done():
            self.step_round()
        self.run_dir.write_status(round=self.round, finished=True, wall=self.wall(), counts=self.counts)

    # ------------------------------------------------------------------ decisions
    def view(self) -> PopulationView:
        return PopulationView({i: r.view() for i, r in self.records.items()})

    def apply(self, d: Decision) -> None:
        """Carry out one decision (the backend copies and sets hparams), log it and tell the listeners."""
        R = self.records
        text = describe(d, R)  # before the copy: the log tells the workers as they were
        changed = function_changes(d, R)
        if changed:
            text += " | " + "; ".join(changed)
        if isinstance(d, Exploit):
            src, dst = R[d.src], R[d.dst]
            if not src.has_state:
                raise RuntimeError(f"strategy asked worker {dst.id} to copy worker {src.id}, which has no state yet")
            self._copy(src, dst, hparams=src.hparams)
            dst.copies += 1
        elif isinstance(d, Explore):
            dst = R[d.dst]
            dst.hparams = {**dst.hparams, **dict(d.hparams)}
            self.backend.set_hparams(dst.id, dst.hparams)
        elif isinstance(d, AssignEvaluator):
            ev, parent, child = R[d.evaluator], R[d.parent], R[d.child]
            self._copy(parent, ev, hparams=child.hparams)
            ev.assigned, ev.has_state = True, True
            ev.copies += 1
        elif isinstance(d, EvaluatorSuccess):
            ev, child = R[d.evaluator], R[d.child]
            self._copy(ev, child, hparams=child.hparams)  # the child keeps its own hparams
            child.copies += 1
        elif isinstance(d, StopEvaluator):
            R[d.evaluator].assigned = False
        elif isinstance(d, StopTrial):
            R[d.worker].stopped = True
        elif isinstance(d, RestartTrial):
            self._restart(R[d.worker], dict(d.hparams))
        elif isinstance(d, FollowCopy):
            self.backend.restream(d.worker, member_seed(self.exp.seed, d.like), d.epoch)
            R[d.worker].reset_curve()
        else:
            raise TypeError(f"unknown decision {d!r}")
        if d.kind in self.counts:
            self.counts[d.kind] += 1
        step = R[d.target].spent if isinstance(d, RestartTrial) else R[d.target].steps  # a restart: where it was
        record = {**to_record(d), "round": self.round, "step": step}
        if changed:
            record["function_changed"] = changed
        self._log(record, text)
        self.emit(DecisionApplied(self.round, step, d, record, text))

    def _restart(self, r: WorkerRecord, hparams: dict[str, Any]) -> None:
        """A new trial in ``r``'s slot: ``hparams``, newly initialised weights (the slot's initial draw: its seed
        is kept), step counter and curve from 0; the steps it used stay counted in ``spent``."""
        r.spent += r.steps
        r.steps, r.q, r.has_state = 0, math.nan, False
        r.trial += 1
        r.hparams = dict(hparams)
        r.reset_curve()
        self.backend.rebuild(self.spec(r), None)
        self.backend.set_hparams(r.id, r.hparams)

    def _copy(self, src: WorkerRecord, dst: WorkerRecord, hparams: dict[str, Any]) -> None:
        """``dst`` takes ``src``'s learner state, then ``hparams``; its curve restarts (paper: since the last copy)."""
        self.backend.copy_state(src.id, dst.id)
        dst.hparams = dict(hparams)
        self.backend.set_hparams(dst.id, dst.hparams)
        dst.reset_curve()

    def _log(self, record: dict[str, Any], text: str) -> None:
        line = f"round {self.round} step {record.get('step', '')}: {text}"
        self.run_dir.append_decision({**record, "wall_time": round(self.wall(), 3), "text": line}, line)

    def _metric_rows(self, r: WorkerRecord, res: TrainReport) -> list[dict[str, Any]]:
        """One row per learner update (or one per call for learners that do not report updates)."""
        if not res.updates:
            return [{"round": self.round, "worker": r.id, "step": res.steps, **res.metrics}]
        rows, step = [], r.steps
        for u in res.updates:
            u = dict(u)
            step += int(u.pop("steps", 0))
            rows.append({"round": self.round, "worker": r.id, "step": step, **u})
        return rows

    def _curve_row(self, r: WorkerRecord, res: TrainReport) -> dict[str, Any]:
        row = {"round": self.round, "worker": r.id, "role": r.role, "subpop": "" if r.subpop is None else r.subpop,
               "step": res.steps, "q": res.q, "episodes": res.episodes, "wall_time": round(self.wall(), 3),
               "copies": r.copies, "hparams": json.dumps(r.hparams, default=str)}
        row.update({f"hp_{n}": r.hparams.get(n, "") for n in self.space_names})
        return row

    # ------------------------------------------------------------------ failures
    def _handle_failure(self, f: WorkerFailure) -> None:
        """A worker that failed (``f.kind``): a diverged member is replaced by a copy of the peer its strategy names
        (``Strategy.replacement``; PBT and FIRE: the best member of its sub-population, preferring one whose
        hparams differ); one that diverges again within a checkpoint interval of its
        replacement is dropped (a copy did not cure it: another would loop); any other failure is rebuilt from the
        last checkpoint; a second failure in the same checkpoint interval drops it."""
        r = self.records[f.worker]
        r.failures += 1
        self.counts["failure"] += 1
        first_line = f.reason
        if self.first_failure is None:
            self.first_failure = f"w{r.id}: {first_line}"
        state = self._last_ckpt_states.get(r.id) or self._last_ckpt_states.get(str(r.id))
        diverged = f.kind == "diverged"
        again = diverged and r.replaced_at >= 0 and r.steps - r.replaced_at < self.exp.checkpoint_steps
        src_id = self.strategy.replacement(self.view(), r.id) if diverged and not again else None
        src = None if src_id is None else self.records[src_id]
        if src is not None:
            r.failures -= 1  # its process is fine: a copy with other hparams, not a strike towards dropping it
            self.backend.copy_state(src.id, r.id)
            r.hparams = dict(src.hparams)
            self.backend.set_hparams(r.id, r.hparams)
            r.has_state, r.q = True, src.q  # its own step counter is kept, as in an exploit
            r.copies += 1
            r.replaced_at = r.steps
            r.reset_curve()
            action = "replaced"
            text = (f"w{r.id} FAILED ({first_line}); replaced by a copy of w{src.id} (Q={src.q:.4g}): weights, "
                    "optimiser, normalisers, hparams")
        elif again:
            r.alive = False
            r.assigned = False
            action = "dropped"
            text = (f"w{r.id} FAILED again ({first_line}) within {self.exp.checkpoint_steps:,} steps of its "
                    f"replacement by a copy; dropped from the population (its sub-population's hparams diverge: "
                    f"narrow the search space, e.g. a lower lr range)")
        elif r.failures <= 1 and (unbuilt := self._rebuild(r, state)) is not None:
            r.alive = False
            r.assigned = False
            action = "dropped"
            text = (f"w{r.id} FAILED ({first_line}); its rebuild from the last checkpoint failed too "
                    f"({unbuilt}); dropped from the population")
        elif r.failures <= 1:
            r.steps = int(state["steps"]) if state is not None else 0
            r.has_state = state is not None
            r.reset_curve()
            action = "rebuilt"
            text = f"w{r.id} FAILED ({first_line}); rebuilt from the last checkpoint at step {r.steps}"
        else:
            r.alive = False
            r.assigned = False
            action = "dropped"
            text = f"w{r.id} FAILED again ({first_line}); dropped from the population"
        self._log({"kind": "failure", "worker": r.id, "round": self.round, "step": r.steps, "failure": f.kind,
                   "reason": f.detail or f.reason}, text)
        self.emit(WorkerFailed(self.round, r.id, first_line, action, text, f.kind))

    def _rebuild(self, r: WorkerRecord, state: dict[str, Any] | None) -> str | None:
        """Rebuild ``r``'s worker from ``state`` (None: it had not trained yet); None when that worked, else the
        one-line reason it did not (an env whose reset raises, a learner that cannot load the state)."""
        try:
            self.backend.rebuild(self.spec(r), state)
            self.backend.set_hparams(r.id, r.hparams)
        except Exception:  # noqa: BLE001 -- the member is dropped; the run goes on with the others
            import traceback

            return failure_line(traceback.format_exc())
        return None

    def failed_reason(self) -> str | None:
        """Why the run failed as a whole (asked when it ends): every member dropped, or no member ever reported a
        finite Q -- a run that measured nothing never exits 0."""
        members = [r for r in self.records.values() if r.role == MEMBER]
        if members and not any(r.alive for r in members):
            return f"every member failed and was dropped; nothing was trained to the end. First failure: " \
                   f"{self.first_failure}"
        if members and self.round > 0 and not self.best_q:
            return (f"no member reported a finite Q (mean episode return) in {self.round} rounds: no episode ended "
                    f"within an evaluation interval, or the learner reports NaN returns; raise eval_steps (now "
                    f"{self.exp.eval_steps:,}) or check the learner's episode_returns")
        return None

    # ------------------------------------------------------------------ checkpoints
    def _keep_best(self, ids: list[int], results: dict[int, Any]) -> None:
        """Keep the full state of each sub-population's member whose Q of this round beats the sub-population's
        best so far (``checkpoints/best-P<n>-<round>.pt``): the best agent outlives the last checkpoints. Only
        the members that set a new best are fetched; the run keeps one such state per sub-population."""
        top: dict[int | None, WorkerRecord] = {}
        for i in ids:
            r = self.records[i]
            if r.role != MEMBER or not isinstance(results.get(i), TrainReport) or not math.isfinite(r.q):
                continue
            if r.subpop not in top or r.q > top[r.subpop].q:
                top[r.subpop] = r
        new = [r for sp, r in top.items() if r.q > self.best_q.get(sp, -math.inf)]
        if not new:
            return
        states = self.backend.peek_states([r.id for r in new])  # not checkpoints: no dead worker restores from them
        for r in new:
            self.run_dir.save_best({"worker": r.id, "subpop": r.subpop, "round": self.round, "step": r.steps,
                                    "q": r.q, "hparams": dict(r.hparams)}, states[r.id])
            self.best_q[r.subpop] = r.q

    def checkpoint(self) -> None:
        t0 = time.perf_counter()
        ids = [r.id for r in self.records.values() if r.alive and r.has_state]
        states = self.backend.get_states(ids) if ids else {}
        for r in self.records.values():
            r.failures = 0 if r.alive else r.failures
        self._last_ckpt_states = states
        payload = {
            "controller": {"round": self.round, "wall": self.wall(), "train_s": self.train_s,
                           "counts": dict(self.counts),
                           "records": {i: vars(r).copy() for i, r in self.records.items()}},
            "strategy": self.strategy.get_state(),
            "workers": states,
        }
        self.run_dir.save_checkpoint(self.round, payload, keep=self.exp.keep_checkpoints)
        self.run_dir.write_status(round=self.round, finished=False, wall=self.wall(), counts=self.counts)
        self.emit(CheckpointSaved(self.round, time.perf_counter() - t0))


def function_changes(d: Decision, records: dict[int, Any]) -> list[str]:
    """What a decision does to the network's function beyond new hyperparameters: a layer whose width shrinks
    drops units (``rlpop.agents.widths``; an explore, or an evaluator taking a narrower child's width on its
    parent's weights). Growing is a morphism and is not listed."""
    if isinstance(d, Explore):
        return width_notes(records[d.dst].hparams, {**records[d.dst].hparams, **dict(d.hparams)})
    if isinstance(d, AssignEvaluator):
        return width_notes(records[d.parent].hparams, records[d.child].hparams)
    return []
