"""TensorBoard logging: per worker Q, *current* hyperparameters and learner diagnostics."""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

from torch.utils.tensorboard import SummaryWriter

if TYPE_CHECKING:
    from rlpop.controller import Controller


class TensorBoardLogger:
    def __init__(self, logdir: str):
        self.writer = SummaryWriter(logdir, flush_secs=10)  # flushed in the background, not every round

    def __call__(self, c: "Controller") -> None:
        w = self.writer
        for i, res in c.last_results.items():
            r = c.records[i]
            tag = f"w{i:03d}"
            if not math.isnan(res.q):
                w.add_scalar(f"Q/{tag}", res.q, res.steps)
            for name, v in r.hparams.items():
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    w.add_scalar(f"hparams/{name}/{tag}", float(v), res.steps)
            for name, v in res.metrics.items():
                if isinstance(v, numbers.Real) and math.isfinite(v):
                    w.add_scalar(f"train/{name}/{tag}", float(v), res.steps)
        members = [r.q for r in c.records.values() if r.role == "member" and not math.isnan(r.q)]
        if members:
            step = max(r.steps for r in c.records.values())
            w.add_scalar("population/best_Q", max(members), step)

    def close(self) -> None:
        self.writer.close()
