"""TensorBoard logging: one TensorBoard run per worker, and the HParams tab.

A listener of the controller's events (``controller.subscribe(TensorBoardLogger(logdir))``). Layout of ``tb/``::

    tb/w000/   Q, hparams/<name> (the *current* value), train/<diagnostic> -- one run per worker, the same tags
    tb/w001/   in every run, so TensorBoard overlays the members on one chart per tag
    ...
    tb/population/   best_Q (the best live member's latest Q)

The HParams tab holds one session per worker: its current hyperparameters (plus ``role`` and ``subpop``)
against its Q (the last point of the run's ``Q`` tag), so members can be sorted and compared. TensorBoard keeps
the first hparams record it reads for a run, so a worker's session lives in one fixed-name event file,
``tb/wNNN/events.out.tfevents.0000000000.hparams``, rewritten (atomically) at every checkpoint and at the end of
the run: a TensorBoard started after that shows the hparams as they were then (restart it to refresh the tab
during a run; the scalars update live).
"""
from __future__ import annotations

import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Mapping

from torch.utils.tensorboard import SummaryWriter

from rlpop.events import CheckpointSaved, Event, RoundFinished, RunStarted, WorkerStatus

#: the event file holding a worker's HParams session (sorts before SummaryWriter's files)
HPARAMS_FILE = "events.out.tfevents.0000000000.hparams"
#: the metric the HParams tab shows against the hyperparameters (a scalar tag of every worker's run)
METRIC = "Q"


def run_name(worker: int) -> str:
    return f"w{worker:03d}"


def _plain(v: Any) -> bool | float | str:
    """A value the HParams plugin takes (number, string or bool)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real):
        return float(v)
    return v if isinstance(v, str) else repr(v)


class TensorBoardLogger:
    def __init__(self, logdir: str):
        self.logdir = Path(logdir)
        self.writers: dict[str, SummaryWriter] = {}
        self.latest: dict[int, WorkerStatus] = {}

    def writer(self, run: str) -> SummaryWriter:
        if run not in self.writers:  # flushed in the background, not every round
            self.writers[run] = SummaryWriter(str(self.logdir / run), flush_secs=10)
        return self.writers[run]

    def __call__(self, event: Event) -> None:
        if isinstance(event, RoundFinished):
            self.round(event)
        elif isinstance(event, RunStarted):
            self.latest.update({s.id: s for s in event.status.workers})
            if event.resumed:  # the checkpoint's round: the run stopped before telling its listeners about it
                for s in event.status.workers:
                    if s.steps > 0 and not math.isnan(s.q):
                        self.writer(run_name(s.id)).add_scalar(METRIC, s.q, s.steps)
            self.write_sessions()
        elif isinstance(event, CheckpointSaved):
            self.write_sessions()

    def round(self, ev: RoundFinished) -> None:
        self.latest.update({s.id: s for s in ev.workers})
        workers = {s.id: s for s in ev.workers}
        for i, res in ev.reports.items():
            w = self.writer(run_name(i))
            if not math.isnan(res.q):
                w.add_scalar(METRIC, res.q, res.steps)
            for name, v in workers[i].hparams.items():
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    w.add_scalar(f"hparams/{name}", float(v), res.steps)
            for name, v in res.metrics.items():
                if isinstance(v, numbers.Real) and math.isfinite(v):
                    w.add_scalar(f"train/{name}", float(v), res.steps)
        if not math.isnan(ev.best_q):
            self.writer("population").add_scalar("best_Q", ev.best_q, max(s.steps for s in ev.workers))

    def session_hparams(self, s: WorkerStatus) -> dict[str, Any]:
        return {**{k: _plain(v) for k, v in s.hparams.items()}, "role": s.role,
                "subpop": s.subpop if s.subpop is not None else 0}

    def write_sessions(self) -> None:
        """Each worker's HParams session, with its current hyperparameters (see the module doc)."""
        from torch.utils.tensorboard.summary import hparams

        for i, s in self.latest.items():
            hp = self.session_hparams(s)
            exp, ssi, sei = hparams(hp, {METRIC: s.q if not math.isnan(s.q) else 0.0})
            write_events(self.logdir / run_name(i) / HPARAMS_FILE, (exp, ssi, sei))

    def close(self) -> None:
        self.write_sessions()
        for w in self.writers.values():
            w.close()


def write_events(path: Path, summaries) -> None:
    """An event file holding ``summaries`` (written beside, then moved into place)."""
    from tensorboard.compat.proto.event_pb2 import Event as TBEvent
    from tensorboard.summary.writer.record_writer import RecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / ".hparams.tmp"  # no "tfevents" in the name: TensorBoard ignores it
    now = time.time()
    with open(tmp, "wb") as f:
        rw = RecordWriter(f)
        rw.write(TBEvent(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for s in summaries:
            rw.write(TBEvent(wall_time=now, summary=s).SerializeToString())
    os.replace(tmp, path)


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of one TensorBoard run directory (e.g. ``tb/w000``), as TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def read_session(run_dir: str | Path) -> Mapping[str, Any]:
    """The HParams session of one worker's TensorBoard run: hparam name -> value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    info = metadata.parse_session_start_info_plugin_data(content)
    out = {}
    for k, v in info.hparams.items():
        kind = v.WhichOneof("kind")
        out[k] = getattr(v, kind)
    return out
