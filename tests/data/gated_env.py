"""Corridor-v0 with a gate: the test env of the kill -9 test, which must not depend on the machine's speed.

Each env instance counts its steps; at step ``at`` it writes ``<gate>/reached`` and then waits until
``<gate>/release`` exists. The test kills the run once ``reached`` appears (the run is then blocked in the
middle of a ready interval, whatever the machine's speed), creates ``release``, and resumes.
"""
import os
import time

from rlpop.envs.corridor import Corridor


class GatedCorridor(Corridor):
    def __init__(self, gate: str, at: int, **kw):
        super().__init__(**kw)
        self.gate, self.at, self.n = gate, int(at), 0

    def step(self, action):
        self.n += 1
        release = os.path.join(self.gate, "release")
        if self.n == self.at and not os.path.exists(release):
            open(os.path.join(self.gate, "reached"), "w").close()
            while not os.path.exists(release):  # blocked until the test kills the run (or releases it)
                time.sleep(0.05)
        return super().step(action)
