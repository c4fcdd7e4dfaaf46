"""TensorBoard logging: per worker Q, *current* hyperparameters and learner diagnostics.

A listener of the controller's events (``controller.subscribe(TensorBoardLogger(logdir))``).
"""
from __future__ import annotations

import math
import numbers

from torch.utils.tensorboard import SummaryWriter

from rlpop.events import Event, RoundFinished


class TensorBoardLogger:
    def __init__(self, logdir: str):
        self.writer = SummaryWriter(logdir, flush_secs=10)  # flushed in the background, not every round

    def __call__(self, event: Event) -> None:
        if isinstance(event, RoundFinished):
            self.round(event)

    def round(self, ev: RoundFinished) -> None:
        w = self.writer
        workers = {s.id: s for s in ev.workers}
        for i, res in ev.reports.items():
            tag = f"w{i:03d}"
            if not math.isnan(res.q):
                w.add_scalar(f"Q/{tag}", res.q, res.steps)
            for name, v in workers[i].hparams.items():
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    w.add_scalar(f"hparams/{name}/{tag}", float(v), res.steps)
            for name, v in res.metrics.items():
                if isinstance(v, numbers.Real) and math.isfinite(v):
                    w.add_scalar(f"train/{name}/{tag}", float(v), res.steps)
        if not math.isnan(ev.best_q):
            w.add_scalar("population/best_Q", ev.best_q, max(s.steps for s in ev.workers))

    def close(self) -> None:
        self.writer.close()
