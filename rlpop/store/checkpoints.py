"""Checkpoints and the kept best states: ``checkpoints/ckpt-<round>.pt`` (every worker's learner state +
controller + strategy state, the newest ``keep_checkpoints``) and ``checkpoints/best-P<n>-<round>.pt`` (each
sub-population's best member's state at its best Q, indexed by ``best.json``).

They load with ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle from someone else's run cannot
execute code here (:func:`_safe_globals`). :meth:`Checkpoints.load_latest_checkpoint` skips a damaged checkpoint
(truncated, garbage, unreadable) for the previous one, and says so.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from rlpop.store.files import RunDirError, RunPath, first_line, replace_with, writing

#: checkpoints/best.json: the kept best states, one entry per sub-population (see :meth:`Checkpoints.save_best`)
BEST_INDEX = "best.json"


class UnsafeCheckpointError(RunDirError):
    """A checkpoint whose pickle names code (not only tensors and plain data): refused, never executed."""


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


class Checkpoints(RunPath):
    def save_checkpoint(self, round_: int, payload: dict[str, Any], keep: int = 2) -> Path:
        """Write ``payload`` as the checkpoint of ``round_`` (atomically; keep the newest ``keep``). A payload
        that is not plain data -- it would be written, then refused on ``--resume`` -- is a RunDirError naming
        the key, before anything is written."""
        import torch

        check_plain_data(payload, "checkpoint")

        ckdir = self.path / "checkpoints"
        path = ckdir / f"ckpt-{round_:08d}.pt"
        with writing(ckdir):
            ckdir.mkdir(exist_ok=True)
        buf = io.BytesIO()
        tmp = path.with_suffix(".tmp")
        with writing(path):
            # serialised in memory first, so a full disk is an OSError(ENOSPC) of ours and not a C++ RuntimeError
            torch.save(payload, buf)
        replace_with(path, tmp, buf.getbuffer())  # atomic: a kill mid-write leaves the previous checkpoint intact
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
        with writing(ckdir):
            ckdir.mkdir(exist_ok=True)
        buf = io.BytesIO()
        rec = {**entry, "file": path.name}
        with writing(path):
            torch.save({"best": rec, "worker_state": worker_state}, buf)
        replace_with(path, path.with_suffix(".tmp"), buf.getbuffer())
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
            return None, f"unreadable pickle: {first_line(msg)}"
        except Exception as exc:  # noqa: BLE001 -- any failure to read it is damage, named in the message
            return None, f"unreadable: {type(exc).__name__}: {first_line(str(exc))}"
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


def _best_key(subpop: Any) -> str:
    return "members" if subpop is None else f"P{subpop}"


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
        return f"truncated or corrupt file: {first_line(str(exc))}"
    if bad is not None:
        return f"corrupt data in {bad}"
    return None
