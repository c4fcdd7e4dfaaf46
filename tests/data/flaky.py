"""Learners that fail on purpose, for the controller's failure handling tests."""
import os
import time

from rlpop.streams import member_seed
from rlpop.toy import NoisyQuadratic


def is_worker_1(seed: int) -> bool:
    """Whether ``seed`` is worker 1's (experiment seed 0, rlpop.streams' scheme)."""
    return seed == member_seed(0, 1)


class RaisesOnce(NoisyQuadratic):
    """Worker 1 raises in its 3rd train call, once per process."""

    raised = False

    def __init__(self, hparams=None, seed=0, **kw):
        super().__init__(hparams, seed, **kw)
        self.calls = 0
        self.victim = is_worker_1(seed)

    def train(self, steps):
        self.calls += 1
        if self.victim and self.calls == 3 and not RaisesOnce.raised:
            RaisesOnce.raised = True
            raise RuntimeError("flaky learner failed on purpose")
        return super().train(steps)


class StallsOnce(NoisyQuadratic):
    """Worker 1 hangs in its 3rd train call the first time (a marker file makes it once across processes)."""

    def __init__(self, hparams=None, seed=0, marker="", **kw):
        super().__init__(hparams, seed, **kw)
        self.calls = 0
        self.victim = is_worker_1(seed)
        self.marker = marker

    def train(self, steps):
        self.calls += 1
        if self.victim and self.calls == 3 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            time.sleep(600)
        return super().train(steps)
