"""Shared helpers for rlpop's benchmark scripts: machine description and JSON output.

Every benchmark JSON carries :func:`machine_info` so a number is never read
without the box, the library versions, the load and the command that made it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: where the scripts write by default
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (what ``uptime`` prints), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model and cores, library versions, date, command line and current load."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {d: _version(d) for d in ("torch", "gymnasium", "stable_baselines3", "mujoco", "numpy",
                                              "rlpop")},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "load_average_at_start": load_average(),
    }


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically (temp file + rename), so a
    reader or a killed run never sees half a file. Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> plain Python for json.dumps."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def parse_layout(text: str) -> dict[str, int]:
    """``"num_actors=2,envs_per_actor=4"`` -> ``{"num_actors": 2, "envs_per_actor": 4}``.

    Raises ValueError naming the bad part and the expected form.
    """
    allowed = {"num_actors", "envs_per_actor"}
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(f"--layout: bad part {part!r}; write e.g. 'num_actors=2,envs_per_actor=4' "
                             f"(keys: {sorted(allowed)})")
        try:
            out[key] = int(value)
        except ValueError:
            raise ValueError(f"--layout: {key} must be an integer, got {value!r}") from None
    if out.get("num_actors", 0) < 0 or out.get("envs_per_actor", 1) < 1:
        raise ValueError(f"--layout: need num_actors >= 0 and envs_per_actor >= 1, got {out}")
    return out
