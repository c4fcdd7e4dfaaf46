"""One writer per run directory: ``lock`` holds its writer's pid, host and start time.

:meth:`RunLock.acquire_lock` creates ``lock`` with O_CREAT|O_EXCL; a second writer is refused while the holder
lives, a dead holder's lock (or one whose pid now belongs to a younger process) is taken over.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from rlpop.store.files import NotARunDirError, RunDirError, RunPath, writing

LOCK_NAME = "lock"


def _host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), to tell a live holder from a reused pid; None if unknown."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 -- psutil.NoSuchProcess, AccessDenied, ...
        return None
    try:  # Linux without psutil: the same computation psutil does
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except Exception:  # noqa: BLE001
        return None


def _pid_state(pid: int, start: float | None) -> str:
    """'alive', 'dead' or 'reused' (the pid now belongs to a younger process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return "dead"
    if start is not None:
        now = _process_start(pid)
        if now is not None and abs(now - start) > 1.0:
            return "reused"
    return "alive"


class RunLock(RunPath):
    _lock_token: str | None = None

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def read_lock(self) -> dict[str, Any] | None:
        """The lock's record (pid, host, started, ...), {} if the file is unreadable, None if there is none."""
        for attempt in range(5):
            try:
                text = self.lock_path.read_text()
            except FileNotFoundError:
                return None
            except OSError:
                return {}
            try:
                rec = json.loads(text)
                if isinstance(rec, dict) and isinstance(rec.get("pid"), int):
                    return rec
            except json.JSONDecodeError:
                pass
            time.sleep(0.05)  # a writer between O_EXCL and its write()
        return {}

    def acquire_lock(self) -> str | None:
        """Make this process the run directory's one writer, until :meth:`release_lock` (or its exit).

        Returns None, or a one-line message when a dead holder's lock was taken over (print it). Raises
        :class:`RunDirError` while another live process holds it, or when the holder is on another host (its
        process cannot be checked from here: the message names the lock file to delete if that run is dead).
        Calling it again while holding the lock does nothing."""
        if self._lock_token is not None and (self.read_lock() or {}).get("token") == self._lock_token:
            return None
        if not self.path.is_dir():
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (no such directory)")
        note = None
        with self._dir_mutex():
            for _ in range(3):
                if self._try_create_lock():
                    return note
                rec = self.read_lock()
                if rec is None:
                    continue  # released meanwhile
                why = self._stale_reason(rec)
                if why is None:
                    raise RunDirError(self._in_use_message(rec))
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
                note = f"{self.path}: took over the lock of {why}"
        raise RunDirError(f"{self.path}: could not take the lock {self.lock_path}; is another run starting here?")

    def release_lock(self) -> None:
        """Remove the lock if this RunDir holds it (idempotent; a lock taken over by another process stays)."""
        token, self._lock_token = self._lock_token, None
        if token is None:
            return
        rec = self.read_lock()
        if rec and rec.get("token") == token and rec.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[str | None]:
        """``with run.locked() as note:`` -- :meth:`acquire_lock` ... :meth:`release_lock`."""
        note = self.acquire_lock()
        try:
            yield note
        finally:
            self.release_lock()

    def _try_create_lock(self) -> bool:
        token = secrets.token_hex(8)
        rec = {"pid": os.getpid(), "host": _host(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "process_start": _process_start(os.getpid()), "token": token}
        with writing(self.lock_path):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                os.write(fd, (json.dumps(rec) + "\n").encode())
                os.fsync(fd)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
                raise
        os.close(fd)
        self._lock_token = token
        import atexit

        atexit.register(self.release_lock)  # a normal exit without release_lock(); a kill leaves a stale lock
        return True

    def _stale_reason(self, rec: dict[str, Any]) -> str | None:
        """Why the lock ``rec`` may be taken over, or None while its holder may be alive."""
        if not rec:
            return f"an unreadable lock file ({self.lock_path})"
        pid, host, since = rec["pid"], rec.get("host", "?"), rec.get("started", "?")
        if host != _host():
            return None
        state = _pid_state(pid, rec.get("process_start"))
        if state == "dead":
            return f"pid {pid} on host {host} (since {since}), which is no longer running"
        if state == "reused":
            return f"pid {pid} on host {host} (since {since}), which is no longer running (pid {pid} is now another process)"
        return None

    def _in_use_message(self, rec: dict[str, Any]) -> str:
        pid, host, since = rec["pid"], rec.get("host", "?"), rec.get("started", "?")
        if host != _host():
            return (f"{self.path} is in use by pid {pid} on host {host} since {since}: wait for it to finish or "
                    f"stop it there; if that run is dead, delete {self.lock_path} and try again")
        return f"{self.path} is in use by pid {pid} on host {host} since {since}: wait for it to finish or stop it (kill {pid})"

    @contextlib.contextmanager
    def _dir_mutex(self) -> Iterator[None]:
        """Serialise lock takeovers between processes of this host (flock on the directory; best effort)."""
        try:
            import fcntl

            fd = os.open(self.path, os.O_RDONLY)
        except (ImportError, OSError):
            yield
            return
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock
