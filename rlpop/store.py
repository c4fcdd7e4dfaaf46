"""The run directory: the single source of truth of a run.

::

    runs/<name>-<YYYYmmdd-HHMMSS>/
      config.json        resolved experiment (after --set overrides) + the experiment file path
      curves.csv         one row per Q evaluation: round, worker, role, subpop, step, q, ... hp_<name>
      metrics.csv        learner diagnostics per evaluation (losses, entropy, kl, ...)
      decisions.jsonl    one JSON record per decision (exploit, explore, assign, success, stop, failure)
      decisions.log      the same, readable: "round 12 step 60000: w3 <- w5 | lr: 3e-4 --(x0.8)--> 2.4e-4"
      checkpoints/       ckpt-<round>.pt: every worker's learner state + controller + strategy state (the last
                         keep_checkpoints of them);
                         best-P<n>-<round>.pt: sub-population n's best member's full state at the round of its
                         best Q (one file per sub-population, replaced when a member beats it), indexed by best.json
      tb/                TensorBoard events (Q, current hparams, diagnostics per worker)
      status.json        progress marker: round, finished
      lock               while a process writes the run: its pid, host and start time

Plots, resume and replay read only this directory. Appends are flushed row by
row; on resume the tables are cut back to the checkpoint's round so curves
stay continuous.

What keeps it from being corrupted or misread:

- one writer: :meth:`RunDir.acquire_lock` creates ``lock`` with O_CREAT|O_EXCL; a second
  writer is refused while the holder lives, a dead holder's lock is taken over;
- files are replaced atomically (write ``.tmp``, fsync, rename) and a failed write --
  a full disk above all -- leaves no ``.tmp`` behind and raises :class:`RunDirError`;
  a failed CSV append is cut back, so no half row is left for the next one to glue onto;
- checkpoints load with ``torch.load(weights_only=True)``: a checkpoint is data, and a
  pickle from someone else's run cannot execute code here (:data:`SAFE_GLOBALS`);
- :meth:`RunDir.load_latest_checkpoint` skips a damaged checkpoint (truncated, garbage,
  unreadable) for the previous one, and says so.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import secrets
import socket
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

#: checkpoints/best.json: the kept best states, one entry per sub-population (see :meth:`RunDir.save_best`)
BEST_INDEX = "best.json"

CURVE_FIELDS = ["round", "worker", "role", "subpop", "step", "q", "episodes", "wall_time", "copies"]

LOCK_NAME = "lock"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RunDirError(Exception):
    """A run directory that cannot be used as asked: in use, damaged, not a run directory, disk full.

    The message is one line that names the file and what to do; CLIs print it without a traceback."""


class NotARunDirError(RunDirError, FileNotFoundError):
    """The directory does not exist or has no config.json (also a FileNotFoundError, for old callers)."""


class UnsafeCheckpointError(RunDirError):
    """A checkpoint whose pickle names code (not only tensors and plain data): refused, never executed."""


# ---------------------------------------------------------------------------------------------------------------
# what a checkpoint may contain besides tensors and plain Python data
def _safe_globals() -> list[Any]:
    """numpy arrays, numpy scalars and dtypes: the learners' normalisers (obs_rms, reward_scaler) and the toy
    learner's weights are float64 numpy arrays; V-MPO's reward scaler keeps numpy float64 scalars.

    Safe because none of these runs code of the file's choosing: ``_reconstruct`` builds an empty ndarray of a
    given shape/dtype, ``ndarray.__setstate__`` fills it from bytes, ``scalar`` builds a number from a dtype and
    bytes, ``dtype``/``dtypes.*DType`` build a dtype from a type code. An object array's elements and any other
    class named in the pickle still go through the weights-only unpickler, which refuses everything not listed.
    Each is also registered under its numpy 1.x name (``numpy.core.multiarray``) so checkpoints written with
    numpy 1 load under numpy 2 and back."""
    import numpy as np

    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    out: list[Any] = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        out.append(fn)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            name = f"{mod}.{fn.__name__}"
            if name != f"{fn.__module__}.{fn.__name__}":
                out.append((fn, name))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: the dtype classes
    if dtypes is not None:
        for n in ("BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType", "UInt16DType",
                  "UInt32DType", "UInt64DType", "Float16DType", "Float32DType", "Float64DType", "LongDoubleDType",
                  "Complex64DType", "Complex128DType", "CLongDoubleDType"):
            if hasattr(dtypes, n):
                out.append(getattr(dtypes, n))
    return out


def not_plain_data(obj: Any, where: str = "state") -> str | None:
    """None when ``obj`` is what a checkpoint may hold -- dicts, lists and tuples of numbers, strings, bytes,
    None, torch tensors and numeric numpy arrays and scalars -- else the first path that is not, and its type."""
    import numpy as np
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.dtype)):
        return None
    if isinstance(obj, (np.ndarray, np.generic)):
        return None if obj.dtype != object else f"{where} (a numpy array of Python objects)"
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return f"{where} (a key of type {type(k).__module__}.{type(k).__qualname__})"
            bad = not_plain_data(v, f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = not_plain_data(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    return f"{where} (a {type(obj).__module__}.{type(obj).__qualname__})"


def check_plain_data(payload: Any, what: str) -> None:
    """A RunDirError naming the first key of ``payload`` that is not plain data (it would be written, then refused
    on ``--resume``), before anything is written."""
    bad = not_plain_data(payload, what)
    if bad:
        raise RunDirError(f"{bad} cannot be checkpointed: a checkpoint holds only tensors, numpy arrays, numbers, "
                          f"strings and dicts/lists of them (it is loaded with weights_only=True); make the "
                          f"learner's get_state() return plain data (e.g. a numpy Generator's bit_generator.state "
                          f"instead of the Generator)")


def _safe_names(entries: list[Any]) -> set[str]:
    names = set()
    for e in entries:
        if isinstance(e, tuple):
            names.add(e[1])
        else:
            names.add(f"{e.__module__}.{e.__qualname__}")
    return names


# ---------------------------------------------------------------------------------------------------------------
# the lock's holder
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


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_token: str | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- creation ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{name}-{stamp}"
        i = 1
        while path.exists():
            path = Path(root) / f"{name}-{stamp}-{i}"
            i += 1
        with _writing(path):
            path.mkdir(parents=True)
            (path / "checkpoints").mkdir()
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def write_config(self, config: dict[str, Any]) -> None:
        self._atomic_write(self.config_path, json.dumps(config, indent=2, default=str))

    def check_is_run_dir(self) -> None:
        """Raise :class:`NotARunDirError` unless this is a directory with a config.json."""
        if not self.path.exists():
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (no such directory)")
        if not self.path.is_dir():
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (not a directory)")
        if not self.config_path.is_file():
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (no config.json)")

    def read_config(self) -> dict[str, Any]:
        self.check_is_run_dir()
        return self._read_json(self.config_path, "the run's configuration")

    # -- one writer ---------------------------------------------------------------
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
        with _writing(self.lock_path):
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

    # -- tables -------------------------------------------------------------------
    def append_rows(self, name: str, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
        """Append rows to ``name`` (CSV), writing the header on first use."""
        path = self.path / name
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        if not path.exists():
            w.writeheader()
        for r in rows:
            w.writerow(r)
        _append(path, buf.getvalue())

    def append_decision(self, record: dict[str, Any], text: str) -> None:
        _append(self.path / "decisions.jsonl", json.dumps(record, default=str) + "\n")
        _append(self.path / "decisions.log", text + "\n")

    def truncate_after(self, round_: int) -> None:
        """Drop rows written after checkpoint ``round_`` (resume keeps curves continuous)."""
        for name in ("curves.csv", "metrics.csv"):
            path = self.path / name
            if not path.exists():
                continue
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            header, body = rows[0], rows[1:]
            i = header.index("round")
            keep = [r for r in body if len(r) == len(header) and _int_or_none(r[i]) is not None
                    and int(r[i]) <= round_]
            buf = io.StringIO(newline="")
            csv.writer(buf).writerows([header, *keep])
            self._atomic_write(path, buf.getvalue())
        self.drop_best_after(round_)
        path = self.path / "decisions.jsonl"
        if path.exists():
            recs = []
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                if isinstance(rec, dict) and rec.get("round", 0) <= round_:
                    recs.append(rec)
            self._atomic_write(path, "".join(json.dumps(r) + "\n" for r in recs))
            self._atomic_write(self.path / "decisions.log", "".join(r.get("text", "") + "\n" for r in recs))

    # -- checkpoints --------------------------------------------------------------
    def save_checkpoint(self, round_: int, payload: dict[str, Any], keep: int = 2) -> Path:
        """Write ``payload`` as the checkpoint of ``round_`` (atomically; keep the newest ``keep``). A payload
        that is not plain data -- it would be written, then refused on ``--resume`` -- is a RunDirError naming
        the key, before anything is written."""
        import torch

        check_plain_data(payload, "checkpoint")

        ckdir = self.path / "checkpoints"
        path = ckdir / f"ckpt-{round_:08d}.pt"
        with _writing(ckdir):
            ckdir.mkdir(exist_ok=True)
        buf = io.BytesIO()
        tmp = path.with_suffix(".tmp")
        with _writing(path):
            # serialised in memory first, so a full disk is an OSError(ENOSPC) of ours and not a C++ RuntimeError
            torch.save(payload, buf)
        _replace_with(path, tmp, buf.getbuffer())  # atomic: a kill mid-write leaves the previous checkpoint intact
        # a checkpoint past this round belongs to a timeline abandoned at resume (it was damaged): drop it, so
        # it neither counts against ``keep`` nor is tried before this one
        cks = self.checkpoints()
        newer = [p for p in cks if p.name > path.name]
        for old in newer + [p for p in cks if p not in newer][:-max(1, keep)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return path

    # -- the kept best states -------------------------------------------------------
    def save_best(self, entry: dict[str, Any], worker_state: dict[str, Any]) -> Path:
        """Keep ``worker_state`` (``{"learner", "steps", "recent"}``) as its sub-population's best:
        ``checkpoints/best-P<subpop>-<round>.pt``, then its ``entry`` (worker, subpop, round, step, q, hparams) in
        ``checkpoints/best.json``, then the sub-population's previous best file is removed. One file per
        sub-population (two for a moment): disk stays bounded, and the index never names a file being written."""
        import torch

        check_plain_data(worker_state, "kept best state")
        sp = entry.get("subpop")
        key = _best_key(sp)
        ckdir = self.path / "checkpoints"
        path = ckdir / f"best-{key}-{int(entry['round']):08d}.pt"
        with _writing(ckdir):
            ckdir.mkdir(exist_ok=True)
        buf = io.BytesIO()
        rec = {**entry, "file": path.name}
        with _writing(path):
            torch.save({"best": rec, "worker_state": worker_state}, buf)
        _replace_with(path, path.with_suffix(".tmp"), buf.getbuffer())
        index = self.read_best_index()
        index[sp] = rec
        self._write_best_index(index)
        for old in ckdir.glob(f"best-{key}-*.pt"):
            if old.name != path.name:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        return path

    def read_best_index(self) -> dict[int | None, dict[str, Any]]:
        """{subpop: entry} of ``checkpoints/best.json`` ({} when the run kept none); entries whose file is
        missing are left out."""
        path = self.path / "checkpoints" / BEST_INDEX
        if not path.is_file():
            return {}
        data = self._read_json(path, "the index of the kept best states (delete it and best-*.pt to drop them)")
        out: dict[int | None, dict[str, Any]] = {}
        for rec in data.values():
            if isinstance(rec, dict) and (self.path / "checkpoints" / str(rec.get("file", ""))).is_file():
                out[rec.get("subpop")] = rec
        return out

    def _write_best_index(self, index: dict[int | None, dict[str, Any]]) -> None:
        data = {_best_key(sp): rec for sp, rec in sorted(index.items(), key=lambda kv: str(kv[0]))}
        self._atomic_write(self.path / "checkpoints" / BEST_INDEX, json.dumps(data, indent=1, default=str))

    def drop_best_after(self, round_: int) -> None:
        """Forget kept best states from rounds after ``round_`` (a resume from that checkpoint abandons them)."""
        index = self.read_best_index()
        late = {sp: rec for sp, rec in index.items() if int(rec.get("round", 0)) > round_}
        if not late:
            return
        for sp, rec in late.items():
            del index[sp]
        self._write_best_index(index)
        for rec in late.values():
            with contextlib.suppress(FileNotFoundError):
                (self.path / "checkpoints" / rec["file"]).unlink()

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return sorted((self.path / "checkpoints").glob("ckpt-*.pt"))

    def latest_checkpoint(self) -> Path | None:
        cks = self.checkpoints()
        return cks[-1] if cks else None

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Load one checkpoint with ``torch.load(weights_only=True)``.

        Raises :class:`UnsafeCheckpointError` for a pickle that names code (nothing of it runs), and
        :class:`RunDirError` for a damaged file, naming the file and the reason."""
        path = Path(path)
        payload, reason = self._try_load(path)
        if reason is not None:
            raise RunDirError(f"{path} is damaged ({reason})")
        return payload

    def load_latest_checkpoint(self) -> tuple[Path | None, dict[str, Any] | None, list[str]]:
        """The newest checkpoint that loads: ``(path, payload, messages)``.

        Damaged checkpoints (empty, truncated, garbage, unreadable) are skipped, newest first, each with a
        one-line message in ``messages`` ("checkpoints/ckpt-00000012.pt is damaged (truncated file); using
        ckpt-00000008.pt"). ``(None, None, [])`` when there is no checkpoint yet. Raises :class:`RunDirError`
        when every checkpoint is damaged, and :class:`UnsafeCheckpointError` on a checkpoint that names code
        (such a file is not skipped: someone put it there; the message says to delete it)."""
        cks = self.checkpoints()
        if not cks:
            return None, None, []
        bad: list[tuple[Path, str]] = []
        for path in reversed(cks):
            payload, reason = self._try_load(path)
            if reason is None:
                msgs = [f"{self._rel(p)} is damaged ({why}); using {path.name}" for p, why in bad]
                return path, payload, msgs
            bad.append((path, reason))
        listed = "; ".join(f"{p.name}: {why}" for p, why in bad)
        raise RunDirError(f"{self.path / 'checkpoints'}: no usable checkpoint ({listed}); move the damaged files "
                          f"away to restart this run from the beginning, or start a new run")

    def _try_load(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(payload, None), or (None, why the file is damaged); raises UnsafeCheckpointError."""
        import pickle

        import torch

        reason = _damage(path)
        if reason is not None:
            return None, reason
        entries = _safe_globals()
        try:
            with torch.serialization.safe_globals(entries):
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            msg = str(exc)
            if "weights only" in msg.lower() or "weights_only" in msg:
                raise UnsafeCheckpointError(self._unsafe_message(path, msg, entries)) from None
            return None, f"unreadable pickle: {_first_line(msg)}"
        except Exception as exc:  # noqa: BLE001 -- any failure to read it is damage, named in the message
            return None, f"unreadable: {type(exc).__name__}: {_first_line(str(exc))}"
        if not isinstance(payload, dict):
            return None, f"not a checkpoint payload (a {type(payload).__name__}, not a dict)"
        return payload, None

    def _unsafe_message(self, path: Path, msg: str, entries: list[Any]) -> str:
        import torch

        names: list[str] = []
        with contextlib.suppress(Exception):
            allowed = _safe_names(entries)
            names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in allowed]
        if not names:
            names = re.findall(r"GLOBAL ([\w.]+)", msg) or ["an object that is not plain data"]
        return (f"{path} is refused: it is not plain data (it names {', '.join(sorted(set(names)))}) and was not "
                f"loaded, so nothing in it ran; rlpop checkpoints hold only tensors, numbers and numpy arrays. "
                f"Delete it if you did not make it")

    def _rel(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.path))
        return str(path)

    # -- status -------------------------------------------------------------------
    def write_status(self, **status: Any) -> None:
        self._atomic_write(self.path / "status.json", json.dumps(status, default=str))

    def read_status(self) -> dict[str, Any]:
        p = self.path / "status.json"
        return self._read_json(p, "the progress marker; delete it to resume from the last checkpoint") \
            if p.exists() else {}

    def _read_json(self, path: Path, what: str) -> dict[str, Any]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (no {path.name})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDirError(f"cannot read {path}: {_first_line(str(exc))}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}, "
                              f"char {exc.pos}); it holds {what}") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{path} is not a JSON object (it is a {type(data).__name__}); it holds {what}")
        return data

    @staticmethod
    def _atomic_write(path: Path, text: str) -> None:
        _replace_with(path, path.with_name(path.name + ".tmp"), text.encode())


def _best_key(subpop: Any) -> str:
    return "members" if subpop is None else f"P{subpop}"


# ---------------------------------------------------------------------------------------------------------------
# writing
def _write_error(path: Path, exc: OSError) -> Exception:
    """RunDirError for a full disk; other OSErrors stay as they are."""
    if exc.errno in _NO_SPACE:
        return RunDirError(f"no space left on device writing {path}: free space, then resume with "
                           f"rlpop run --resume {_run_dir_of(path)}")
    return exc


def _run_dir_of(path: Path) -> Path:
    for p in [path, *path.parents]:
        if (p / "config.json").is_file():
            return p
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        err = _write_error(path, exc)
        if err is exc:
            raise
        raise err from exc


def _replace_with(path: Path, tmp: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``tmp``, fsync, rename over ``path``; on any failure remove ``tmp``."""
    with _writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def _append(path: Path, text: str) -> None:
    """Append ``text``; if the write fails (a full disk), cut the file back so no partial line stays."""
    with _writing(path):
        f = open(path, "ab")
        try:
            start = f.seek(0, os.SEEK_END)
            try:
                f.write(text.encode())
                f.flush()
            except OSError:
                with contextlib.suppress(OSError):
                    f.truncate(start)
                raise
        finally:
            with contextlib.suppress(OSError):
                f.close()


# ---------------------------------------------------------------------------------------------------------------
# reading
def _first_line(s: str) -> str:
    s = s.strip()
    return (s.splitlines() or [""])[0][:200]


def _int_or_none(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def _damage(path: Path) -> str | None:
    """Why ``path`` cannot be a torch checkpoint (read before any unpickling), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"
    if size == 0:
        return "empty file"
    if head != b"PK\x03\x04":
        return "not a checkpoint: unknown format"
    if not zipfile.is_zipfile(path):
        return "truncated file"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"truncated or corrupt file: {_first_line(str(exc))}"
    if bad is not None:
        return f"corrupt data in {bad}"
    return None
