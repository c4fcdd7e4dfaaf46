"""Every shard in the calling process, trained in turn (deterministic).

With a batched learner (PPO, V-MPO) the whole population is one shard by
default: one process, one batched policy, one batched update. Other learners
run one member per shard, one after the other.

Stalls (``worker_timeout_s``, passed to :meth:`InlineBackend.train` as
``timeout_s``): env processes that give no answer within it are
killed and their members fail as stalled (the controller rebuilds them from
the last checkpoint; see :func:`rlpop.agents.procs.set_stall_timeout`). An env
that steps in this process (``num_actors=0``) cannot be interrupted: a
watchdog thread then prints one line naming the stalled members, the timeout
and the way out, and ends the process with exit code :data:`STALL_EXIT_CODE`
(its children die with it; the run resumes from its last checkpoint).
"""
from __future__ import annotations

import math
import os
import shlex
import sys
import threading
import time
import traceback
from typing import Any, Callable

from rlpop.agents import procs, use_batched
from rlpop.backends.base import WorkerFailure, WorkerSpec
from rlpop.shard import BatchShard, MemberShard, split
from rlpop.worker import TrainReport


#: exit code of a run ended by the stall watchdog (an in-process env step that never returned)
STALL_EXIT_CODE = 3


class StallWatchdog:
    """A daemon thread that ends the process when the training thread makes no progress.

    Armed around each shard's ``train``: fires when an env step in this process has run longer than
    ``timeout_s``, or when nothing happened for ``timeout_s`` (no env step finished, no child answered,
    no update reported) while the thread is not waiting on a child process (those waits have their own
    deadline, and a stalled child is killed and rebuilt instead)."""

    def __init__(self, run_dir: Callable[[], str | None]) -> None:
        self._run_dir = run_dir
        self._armed: tuple[list[int], float] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def arm(self, ids: list[int], timeout_s: float) -> None:
        if not timeout_s or timeout_s <= 0 or math.isinf(timeout_s):
            return
        procs.activity.beat()
        with self._lock:
            self._armed = (list(ids), float(timeout_s))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True, name="rlpop-stall-watchdog")
                self._thread.start()

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def stop(self) -> None:
        self.disarm()
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                armed = self._armed
            if armed is None:
                continue
            ids, t = armed
            a, now = procs.activity, time.monotonic()
            started = a.env_step_since
            if started is not None and now - started > t:
                self._fire(ids, t, in_env_step=True)
            elif started is None and a.waiting == 0 and now - a.last > t:
                self._fire(ids, t, in_env_step=False)

    def message(self, ids: list[int], t: float, in_env_step: bool) -> str:
        who = ", ".join(f"w{i}" for i in ids)
        resume = f"resume with rlpop run --resume {shlex.quote(self._run_dir() or 'RUN_DIR')}"
        if in_env_step:
            return (f"{who} stalled in an in-process env step for {t:g} s (worker_timeout_s); the run stops "
                    f"— use agent.hparams.num_actors>=1 so a stalled env can be killed and rebuilt; {resume}")
        return (f"{who} made no progress for {t:g} s (worker_timeout_s) in the CLI's process; the run stops "
                f"— raise worker_timeout_s if one update takes that long, or use agent.hparams.num_actors>=1 "
                f"so a stalled env can be killed and rebuilt; {resume}")

    def _fire(self, ids: list[int], t: float, in_env_step: bool) -> None:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            print("\n" + self.message(ids, t, in_env_step), file=sys.stderr, flush=True)
        finally:
            procs.kill_all()  # they would die with us anyway (parent-death signal); no need to wait
            os._exit(STALL_EXIT_CODE)


class InlineBackend:
    name = "inline"

    def __init__(self, engine: str = "auto", shard_size: int = 0,
                 on_progress: Callable[[dict[str, Any]], None] | None = None, run_dir: str | None = None) -> None:
        self.engine = engine
        self.shard_size = int(shard_size or 0)
        self.where: dict[int, BatchShard | MemberShard] = {}
        self.batched = False
        #: called with {"steps", "target", "t0"} after every batched update during a round (progress lines)
        self.on_progress = on_progress
        #: the run directory, named by the stall watchdog's message (None: "RUN_DIR")
        self.run_dir = run_dir
        self.watchdog = StallWatchdog(lambda: self.run_dir)

    @property
    def shards(self) -> list[BatchShard | MemberShard]:
        return list({id(s): s for s in self.where.values()}.values())

    def start(self, specs: list[WorkerSpec]) -> None:
        self.batched = use_batched(specs[0].learner if specs else None, self.engine)
        if self.batched:
            n = math.ceil(len(specs) / self.shard_size) if self.shard_size else 1
            groups, cls = split(specs, n), BatchShard
        else:
            groups, cls = [[s] for s in specs], MemberShard
        for g in groups:
            shard = cls(g)
            for s in g:
                self.where[s.id] = shard

    def _by_shard(self, ids: list[int]) -> list[tuple[Any, list[int]]]:
        out: dict[int, tuple[Any, list[int]]] = {}
        for i in ids:
            sh = self.where[i]
            out.setdefault(id(sh), (sh, []))[1].append(i)
        return list(out.values())

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        procs.set_stall_timeout(timeout_s)  # env / actor processes silent this long are killed: a failure
        out: dict[int, TrainReport | WorkerFailure] = {}
        for shard, group in self._by_shard(ids):
            self.watchdog.arm(group, timeout_s)  # in-process envs cannot be killed: the run stops
            try:
                out.update(shard.train(group, steps, self._progress))
            except Exception as exc:  # noqa: BLE001 -- reported to the controller, which decides
                tb = traceback.format_exc()
                out.update({i: WorkerFailure.caught(i, exc, tb) for i in group})
            finally:
                self.watchdog.disarm()
        return out

    def _progress(self, live: dict[str, Any]) -> None:
        procs.activity.beat()
        if self.on_progress is not None:
            self.on_progress(live)

    def copy_state(self, src: int, dst: int) -> None:
        a, b = self.where[src], self.where[dst]
        if a is b:
            a.copy(src, dst)
        else:
            b.set_learner_state(dst, a.get_learner_state(src))

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None:
        self.where[worker].set_hparams(worker, hparams)

    def restream(self, worker: int, seed: int, epoch: int) -> None:
        self.where[worker].restream(worker, seed, epoch)

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for shard, group in self._by_shard(ids):
            out.update(shard.get_states(group))
        return {i: out[i] for i in ids}

    peek_states = get_states  # a failed worker is rebuilt from the controller's checkpoint, not from these

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        self.where[worker].restore(worker, state)

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        shard = self.where[spec.id]
        if isinstance(shard, BatchShard):  # the process lives on: the member is restored in place
            if state is not None:
                shard.restore(spec.id, state)
            else:
                shard.reinit(spec.id)
            return
        try:
            shard.close()
        except Exception:  # noqa: BLE001
            pass
        self.where[spec.id] = MemberShard([spec])
        if state is not None:
            self.where[spec.id].restore(spec.id, state)

    def close(self) -> None:
        self.watchdog.stop()
        for s in self.shards:
            s.close()
        self.where.clear()
