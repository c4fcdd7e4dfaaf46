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

One concept per module: the one writer (``lock.py``), atomic writes and the shared errors (``files.py``), the
tables (``tables.py``), checkpoints that are data and damaged ones skipped (``checkpoints.py``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rlpop.store.checkpoints import BEST_INDEX, Checkpoints, UnsafeCheckpointError, check_plain_data, not_plain_data
from rlpop.store.files import NotARunDirError, RunDirError, writing
from rlpop.store.lock import RunLock
from rlpop.store.tables import CURVE_FIELDS, Tables

__all__ = ["BEST_INDEX", "CURVE_FIELDS", "NotARunDirError", "RunDir", "RunDirError", "UnsafeCheckpointError",
           "check_plain_data", "not_plain_data"]


class RunDir(RunLock, Tables, Checkpoints):
    """A run directory: its config and status here; its lock, tables and checkpoints from their modules."""

    # -- creation ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{name}-{stamp}"
        i = 1
        while path.exists():
            path = Path(root) / f"{name}-{stamp}-{i}"
            i += 1
        with writing(path):
            path.mkdir(parents=True)
            (path / "checkpoints").mkdir()
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

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

    def truncate_after(self, round_: int) -> None:
        """Drop what was written after checkpoint ``round_`` (resume keeps curves continuous): table rows,
        decisions and kept best states."""
        self.cut_tables(round_)
        self.drop_best_after(round_)

    # -- status -------------------------------------------------------------------
    def write_status(self, **status: Any) -> None:
        self._atomic_write(self.path / "status.json", json.dumps(status, default=str))

    def read_status(self) -> dict[str, Any]:
        p = self.path / "status.json"
        return self._read_json(p, "the progress marker; delete it to resume from the last checkpoint") \
            if p.exists() else {}
