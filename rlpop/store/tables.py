"""The run's tables: curves.csv and metrics.csv (a row per Q evaluation, per learner update), decisions.jsonl and
decisions.log (a record and a sentence per decision), appended row by row and cut back to a checkpoint's round
on resume."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

from rlpop.store.files import RunPath, append

CURVE_FIELDS = ["round", "worker", "role", "subpop", "step", "q", "episodes", "wall_time", "copies"]


class Tables(RunPath):
    def append_rows(self, name: str, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
        """Append rows to ``name`` (CSV), writing the header on first use."""
        path = self.path / name
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        if not path.exists():
            w.writeheader()
        for r in rows:
            w.writerow(r)
        append(path, buf.getvalue())

    def append_decision(self, record: dict[str, Any], text: str) -> None:
        append(self.path / "decisions.jsonl", json.dumps(record, default=str) + "\n")
        append(self.path / "decisions.log", text + "\n")

    def cut_tables(self, round_: int) -> None:
        """Drop rows and decisions written after checkpoint ``round_``."""
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


def _int_or_none(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None
