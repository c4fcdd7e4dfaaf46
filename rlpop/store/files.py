"""What the run directory's parts share: its errors, its path, and writes that never leave half a file.

Files are replaced atomically (write ``.tmp``, fsync, rename) and a failed write -- a full disk above all --
leaves no ``.tmp`` behind and raises :class:`RunDirError`; a failed append is cut back, so no half row is left
for the next one to glue onto.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
from pathlib import Path
from typing import Any, Iterator

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RunDirError(Exception):
    """A run directory that cannot be used as asked: in use, damaged, not a run directory, disk full.

    The message is one line that names the file and what to do; CLIs print it without a traceback."""


class NotARunDirError(RunDirError, FileNotFoundError):
    """The directory does not exist or has no config.json (also a FileNotFoundError, for old callers)."""


class RunPath:
    """A run directory's path, and how its parts read and write its files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _read_json(self, path: Path, what: str) -> dict[str, Any]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotARunDirError(f"{self.path} is not an rlpop run directory (no {path.name})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDirError(f"cannot read {path}: {first_line(str(exc))}") from None
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
        replace_with(path, path.with_name(path.name + ".tmp"), text.encode())

    def _rel(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.path))
        return str(path)


def _write_error(path: Path, exc: OSError) -> Exception:
    """RunDirError for a full disk; other OSErrors stay as they are."""
    if exc.errno in _NO_SPACE:
        return RunDirError(f"no space left on device writing {path}: free space, then resume with "
                           f"rlpop run --resume {shlex.quote(str(_run_dir_of(path)))}")
    return exc


def _run_dir_of(path: Path) -> Path:
    for p in [path, *path.parents]:
        if (p / "config.json").is_file():
            return p
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        err = _write_error(path, exc)
        if err is exc:
            raise
        raise err from exc


def replace_with(path: Path, tmp: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``tmp``, fsync, rename over ``path``; on any failure remove ``tmp``."""
    with writing(path):
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


def append(path: Path, text: str) -> None:
    """Append ``text``; if the write fails (a full disk), cut the file back so no partial line stays."""
    with writing(path):
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


def first_line(s: str) -> str:
    s = s.strip()
    return (s.splitlines() or [""])[0][:200]
