"""The run directory: the single source of truth of a run.

::

    runs/<name>-<YYYYmmdd-HHMMSS>/
      config.json        resolved experiment (after --set overrides) + the experiment file path
      curves.csv         one row per Q evaluation: round, worker, role, subpop, step, q, ... hp_<name>
      metrics.csv        learner diagnostics per evaluation (losses, entropy, kl, ...)
      decisions.jsonl    one JSON record per decision (exploit, explore, assign, success, stop, failure)
      decisions.log      the same, readable: "round 12 step 60000: w3 <- w5 | lr: 3e-4 --(x0.8)--> 2.4e-4"
      checkpoints/       ckpt-<round>.pt: every worker's learner state + controller + strategy state
      tb/                TensorBoard events (Q, current hparams, diagnostics per worker)
      status.json        progress marker: round, finished

Plots, resume and replay read only this directory. Appends are flushed row by
row; on resume the tables are cut back to the checkpoint's round so curves
stay continuous.
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch

CURVE_FIELDS = ["round", "worker", "role", "subpop", "step", "q", "episodes", "wall_time", "copies"]


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- creation ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{name}-{stamp}"
        i = 1
        while path.exists():
            path = Path(root) / f"{name}-{stamp}-{i}"
            i += 1
        path.mkdir(parents=True)
        (path / "checkpoints").mkdir()
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write_config(self, config: dict[str, Any]) -> None:
        self._atomic_write(self.config_path, json.dumps(config, indent=2, default=str))

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.path} is not an rlpop run directory (no config.json)")
        return json.loads(self.config_path.read_text())

    # -- tables -------------------------------------------------------------------
    def append_rows(self, name: str, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
        """Append rows to ``name`` (CSV), writing the header on first use."""
        path = self.path / name
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow(r)
            f.flush()

    def append_decision(self, record: dict[str, Any], text: str) -> None:
        with (self.path / "decisions.jsonl").open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        with (self.path / "decisions.log").open("a") as f:
            f.write(text + "\n")

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
            keep = [r for r in body if len(r) == len(header) and int(r[i]) <= round_]
            tmp = path.with_suffix(".tmp")
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerows([header, *keep])
            os.replace(tmp, path)
        path = self.path / "decisions.jsonl"
        if path.exists():
            recs = []
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                if rec.get("round", 0) <= round_:
                    recs.append(rec)
            self._atomic_write(path, "".join(json.dumps(r) + "\n" for r in recs))
            self._atomic_write(self.path / "decisions.log", "".join(r.get("text", "") + "\n" for r in recs))

    # -- checkpoints --------------------------------------------------------------
    def save_checkpoint(self, round_: int, payload: dict[str, Any], keep: int = 2) -> Path:
        ckdir = self.path / "checkpoints"
        ckdir.mkdir(exist_ok=True)
        path = ckdir / f"ckpt-{round_:08d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint intact
        for old in sorted(ckdir.glob("ckpt-*.pt"))[:-max(1, keep)]:
            old.unlink()
        return path

    def latest_checkpoint(self) -> Path | None:
        cks = sorted((self.path / "checkpoints").glob("ckpt-*.pt"))
        return cks[-1] if cks else None

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        return torch.load(path, weights_only=False)

    # -- status -------------------------------------------------------------------
    def write_status(self, **status: Any) -> None:
        self._atomic_write(self.path / "status.json", json.dumps(status, default=str))

    def read_status(self) -> dict[str, Any]:
        p = self.path / "status.json"
        return json.loads(p.read_text()) if p.exists() else {}

    @staticmethod
    def _atomic_write(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
