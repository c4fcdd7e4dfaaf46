"""An env whose step() never returns, on purpose (stall tests: tests/test_stalls.py).

Armed by the env var ``RLPOP_HANG_FLAG`` (a file path): once the file exists, the
first env of any process to step ``HANG_AFTER`` (default 30) times claims it (removes
it -- exactly one env hangs per flag file), writes its pid to ``<flag>.hung`` and
sleeps forever. Without the variable or the file it is a trivial 2-action env.
"""
import os
import time

import gymnasium as gym
import numpy as np

from rlpop.envs import register_env


class Hang(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.t = 0
        self.after = int(os.environ.get("RLPOP_HANG_AFTER", "30"))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        self.n += 1
        flag = os.environ.get("RLPOP_HANG_FLAG")
        if flag and self.t >= self.after:
            try:
                os.remove(flag)  # atomic: one env wins
            except FileNotFoundError:
                pass
            else:
                with open(flag + ".hung", "w") as f:
                    f.write(str(os.getpid()))
                while True:
                    time.sleep(3600)
        obs = np.full(2, 0.1 * (action - 0.5), np.float32)
        return obs, float(action), False, self.n >= 20, {}


register_env("Hang-v0", Hang)
