"""Spawned child processes that answer commands over pipes (a batched learner's env processes).

Each child gets one end of a pipe; the parent sends ``(cmd, payload)`` and the
child answers ``("ok" | "ready", payload)`` or ``("error", traceback)``. A
child's exception, a dead child, a broken pipe or a child that makes no
progress within the stall timeout (:func:`set_stall_timeout`, the experiment's
``worker_timeout_s``) reach the caller as one exception naming the process and
the env; every child is then shut down (a stalled one is killed).

No child outlives its parent: children are daemons, ignore SIGINT (the parent
handles Ctrl-C and closes them), are closed at interpreter exit, and die with
the parent however it ends -- kill -9 included, even while an env step hangs:
on Linux the kernel sends them SIGKILL when the parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread in the child polls
``os.getppid()`` and kills its own process (``SIGKILL``: a hung main thread
cannot run Python code, so no cooperation is needed from it). Once the
children are gone, multiprocessing's resource tracker (whose pipe only the
parent and the children hold) reads end-of-file and exits too.

The parent-death signal follows the *thread* that started the child (Linux
sends it when that thread ends, even if the process lives on), so it is used
only for children started from the main thread; children started from other
threads (e.g. a threaded Ray actor's) get the watchdog thread instead.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Callable, Iterator, Sequence

_LIVE: "weakref.WeakSet[ChildProcesses]" = weakref.WeakSet()

#: seconds a child may take to answer before it counts as stalled (None: wait forever)
_STALL_TIMEOUT_S: float | None = None
#: with a stall timeout set, a starting child (spawn, imports, env construction) gets at least this long
STARTUP_TIMEOUT_S = 120.0


def set_stall_timeout(seconds: float | None) -> None:
    """How long :meth:`ChildProcesses.receive` waits for a child's answer in this process before the
    children are killed and the call fails as stalled (None or <= 0: forever). Backends set it to the
    experiment's ``worker_timeout_s`` before training."""
    global _STALL_TIMEOUT_S
    _STALL_TIMEOUT_S = float(seconds) if seconds is not None and seconds > 0 and seconds != float("inf") else None


class Activity:
    """What this process's training thread is doing, for a watchdog thread (the inline backend's).

    ``last`` (monotonic time of the last sign of progress: an env step done, a child's answer),
    ``env_step_since`` (when an env step in this process started, None outside one) and
    ``waiting`` (> 0 while waiting on a child, which has its own stall deadline)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.env_step_since: float | None = None
        self.waiting = 0

    def beat(self) -> None:
        self.last = time.monotonic()

    @contextlib.contextmanager
    def env_step(self) -> Iterator[None]:
        """Around an env step (or reset) that runs in this process."""
        self.env_step_since = time.monotonic()
        try:
            yield
        finally:
            self.env_step_since = None
            self.last = time.monotonic()

    @contextlib.contextmanager
    def waiting_on_child(self) -> Iterator[None]:
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1
            self.last = time.monotonic()


#: this process's activity (read by the inline backend's stall watchdog)
activity = Activity()


@atexit.register
def _close_all() -> None:
    for group in list(_LIVE):
        group.close()


def kill_all() -> None:
    """SIGKILL every live child of this process's groups at once (the process is about to end)."""
    for group in list(_LIVE):
        for p in group.procs:
            try:
                p.kill()
            except Exception:  # noqa: BLE001
                pass


# ----------------------------------------------------------------------------- dying with the parent
PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> bool:
    """Linux: the kernel sends this process SIGKILL when its parent dies. False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except Exception:  # noqa: BLE001 -- no libc / no prctl: the watchdog thread instead
        return False


def _watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Kill this process as soon as its parent is gone (reparented: ``os.getppid()`` changes)."""
    while True:
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(1)  # where SIGKILL is not delivered at once
        time.sleep(interval)


def die_with_parent(parent_pid: int, force_thread: bool = False) -> str:
    """Make this child end when ``parent_pid`` dies; returns the mechanism ("pdeathsig" or "thread")."""
    if not force_thread and _set_parent_death_signal():
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return "pdeathsig"
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="rlpop-parent-watch").start()
    return "thread"


def serve(conn, parent_pid: int, pdeathsig: bool, factory: Callable[..., Any], *args: Any) -> None:
    """A child's main loop: build ``factory(*args)``, say "ready" with its spaces, then answer
    ``(cmd, payload)`` with ``getattr(obj, cmd)(*payload)`` until "close" or the parent is gone.
    The child ends when process ``parent_pid`` dies (see :func:`die_with_parent`; ``pdeathsig``:
    the parent started it from its main thread)."""
    die_with_parent(parent_pid, force_thread=not pdeathsig)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    obj = None
    try:
        obj = factory(*args)
        conn.send(("ready", (obj.single_observation_space, obj.single_action_space)))
        while True:
            try:
                cmd, payload = conn.recv()
            except (EOFError, OSError):
                break  # parent gone
            if cmd == "close":
                break
            conn.send(("ok", getattr(obj, cmd)(*payload)))
    except Exception:  # noqa: BLE001 - everything goes back to the parent
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if obj is not None:
            obj.close()


class ChildProcesses:
    """``len(args)`` spawned processes, child i serving ``factory(*args[i])`` (see :func:`serve`)."""

    def __init__(self, factory: Callable[..., Any], args: Sequence[tuple], names: Sequence[str],
                 error: type[Exception], label: str, env_id: str):
        self.error, self.label, self.env_id = error, label, env_id
        self.closed = False
        ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self._started: list[bool] = []  # child i has answered once (its "ready")
        _LIVE.add(self)
        me = os.getpid()
        # the parent-death signal fires when the *starting thread* ends: only the main thread is safe
        pdeathsig = threading.current_thread() is threading.main_thread()
        try:
            for a, name in zip(args, names):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=serve, daemon=True, name=name, args=(child, me, pdeathsig, factory, *a))
                p.start()
                child.close()
                self.procs.append(p)
                self.conns.append(parent)
                self._started.append(False)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.procs)

    def _dead(self, i: int, exc: BaseException) -> Exception:
        code = self.procs[i].exitcode
        self.close()
        err = self.error(f"{self.label} {i} for env {self.env_id!r} died (exit code {code})")
        err.__cause__ = exc
        return err

    def _stalled(self, i: int, limit: float, waited: float) -> Exception:
        self.close(kill=True)
        what = "no progress for" if self._started[i] else "did not start within"
        return self.error(f"{self.label} {i} for env {self.env_id!r} stalled: {what} {waited:g} s "
                          f"(worker_timeout_s={limit:g}); killed")

    def receive(self, i: int) -> Any:
        limit = _STALL_TIMEOUT_S
        wait = limit if limit is None or self._started[i] else max(limit, STARTUP_TIMEOUT_S)
        try:
            with activity.waiting_on_child():
                if wait is not None and not self.conns[i].poll(wait):
                    raise self._stalled(i, limit, wait)
                status, payload = self.conns[i].recv()
                self._started[i] = True
        except (EOFError, OSError) as exc:
            raise self._dead(i, exc) from exc
        if status == "error":
            self.close()
            raise self.error(f"{self.label} {i} for env {self.env_id!r} failed:\n{payload}")
        return payload

    def send(self, i: int, message: tuple) -> None:
        if self.closed:
            raise self.error(f"{self.label}es for env {self.env_id!r} are closed")
        try:
            self.conns[i].send(message)
        except (BrokenPipeError, OSError) as exc:  # the child is gone
            raise self._dead(i, exc) from exc

    def call(self, messages: Sequence[tuple]) -> list[Any]:
        """Send one message to each child, then collect every answer (the children work in parallel)."""
        for i, m in enumerate(messages):
            self.send(i, m)
        return [self.receive(i) for i in range(len(self.conns))]

    def close(self, kill: bool = False) -> None:
        """Ask every child to close (``kill``: SIGKILL them at once -- a stalled child cannot answer)."""
        if self.closed:
            return
        self.closed = True
        if kill:
            for p in self.procs:
                if p.is_alive():
                    p.kill()
        else:
            for c in self.conns:
                try:
                    c.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for p in self.procs:
            p.join(timeout=2)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
        for c in self.conns:
            c.close()
        _LIVE.discard(self)
