"""Nothing of an embedded Ray cluster outlives the process that started it.

``ray.init()`` without an address starts a local cluster as children of the
driver: gcs_server, raylet, dashboard, monitors; the raylet starts its
``DashboardAgent`` and ``RuntimeEnvAgent`` and the workers. When the driver
dies (``kill -9``, Ctrl-C, or a normal ``ray.shutdown()``) the workers go with
the raylet, but the two agents notice it late and then wait on the dead GCS:
they lived on 60-80 s with parent pid 1.

:func:`start` launches this module as a small watcher process. It keeps the
set of the cluster's processes (the driver's children that ``ray.init`` made,
and all their descendants, refreshed every second) and blocks on a pipe from
the driver. The pipe reaches end-of-file when the driver closes it
(:meth:`Reaper.close`, after ``ray.shutdown()``) or dies by any means -- the
kernel closes it, even on ``kill -9``. Then every process of the set still
alive gets SIGTERM and, 2 s later, SIGKILL, and the watcher exits. It ignores
SIGINT, SIGTERM and SIGHUP (a Ctrl-C reaches the whole process group, the
driver's cleanup needs it alive). Processes are tracked with psutil (``Process``
objects compare creation times, so a reused pid is never killed); Ray ships
psutil in ``ray/thirdparty_files``.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from typing import Any

POLL_S = 1.0
GRACE_S = 2.0


def _psutil():
    try:
        import psutil
    except ImportError:  # Ray's own copy
        import importlib.util

        spec = importlib.util.find_spec("ray")
        if spec is None or not spec.submodule_search_locations:
            raise
        sys.path.append(os.path.join(list(spec.submodule_search_locations)[0], "thirdparty_files"))
        import psutil
    return psutil


def children() -> set[tuple[int, float]]:
    """The calling process's direct children, as (pid, creation time)."""
    psutil = _psutil()
    out = set()
    for p in psutil.Process().children():
        try:
            out.add((p.pid, p.create_time()))
        except psutil.Error:
            pass
    return out


class Reaper:
    """The driver's end of the watcher: ``close()`` after ``ray.shutdown()`` reaps what is left and waits."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def close(self, timeout_s: float = 15.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(roots: set[tuple[int, float]]) -> Reaper | None:
    """Watch ``roots`` (pid, creation time) and their descendants; None when there is nothing to watch."""
    if not roots:
        return None
    args = [sys.executable, "-m", "rlpop.reaper", *(f"{pid}:{t!r}" for pid, t in sorted(roots))]
    return Reaper(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True))


def init_ray(**kwargs: Any) -> Reaper | None:
    """``ray.init(**kwargs)`` starting an embedded cluster, watched: close the returned Reaper after
    ``ray.shutdown()`` (a process of the caller's that starts its own local Ray session can use it too)."""
    import ray

    before = children()
    ray.init(**kwargs)
    return start(children() - before)


def _tracked(psutil, roots: list[Any], known: dict[tuple[int, float], Any]) -> None:
    for r in roots:
        try:
            procs = [r, *r.children(recursive=True)]
        except psutil.Error:
            procs = [r]
        for p in procs:
            try:
                key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            known.setdefault(key, p)


def reap(procs: list[Any], grace_s: float = GRACE_S) -> None:
    """SIGTERM every process of ``procs`` still alive, SIGKILL those alive ``grace_s`` later."""
    psutil = _psutil()
    alive = []
    for p in procs:
        try:
            if p.is_running():
                p.terminate()
                alive.append(p)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=grace_s)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    psutil = _psutil()
    roots = []
    for item in argv:
        pid, _, t = item.partition(":")
        try:
            p = psutil.Process(int(pid))
            if abs(p.create_time() - float(t)) < 1e-3:
                roots.append(p)
        except psutil.Error:
            pass
    known: dict[tuple[int, float], Any] = {}
    fd = sys.stdin.fileno()
    while True:
        _tracked(psutil, roots, known)
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready and not os.read(fd, 4096):
            break  # end of file: the driver closed the pipe or died
    _tracked(psutil, roots, known)  # the latest workers too
    reap(list(known.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
