"""Spawned child processes that answer commands over pipes (actor processes, env processes).

Each child gets one end of a pipe; the parent sends ``(cmd, payload)`` and the
child answers ``("ok" | "ready", payload)`` or ``("error", traceback)``. A
child's exception, a dead child or a broken pipe reach the caller as one
exception naming the process and the env; every child is then shut down.
Children are daemons (they end with the parent), ignore SIGINT (the parent
handles Ctrl-C and closes them), and are closed at interpreter exit.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import signal
import traceback
import weakref
from typing import Any, Callable, Sequence

_LIVE: "weakref.WeakSet[ChildProcesses]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for group in list(_LIVE):
        group.close()


def serve(conn, factory: Callable[..., Any], *args: Any) -> None:
    """A child's main loop: build ``factory(*args)``, say "ready" with its spaces, then answer
    ``(cmd, payload)`` with ``getattr(obj, cmd)(*payload)`` until "close" or the parent is gone."""
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
        for a, name in zip(args, names):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=serve, daemon=True, name=name, args=(child, factory, *a))
            p.start()
            child.close()
            self.procs.append(p)
            self.conns.append(parent)
        _LIVE.add(self)

    def __len__(self) -> int:
        return len(self.procs)

    def _dead(self, i: int, exc: BaseException) -> Exception:
        code = self.procs[i].exitcode
        self.close()
        err = self.error(f"{self.label} {i} for env {self.env_id!r} died (exit code {code})")
        err.__cause__ = exc
        return err

    def receive(self, i: int) -> Any:
        try:
            status, payload = self.conns[i].recv()
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

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
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
        for c in self.conns:
            c.close()
        _LIVE.discard(self)
