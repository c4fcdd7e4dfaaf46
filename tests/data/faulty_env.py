"""An env that raises inside step() after a few steps (actor error reporting tests)."""
import gymnasium as gym
import numpy as np

from rlpop.envs import register_env


class Faulty(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fail_after: int = 5):
        self.t, self.fail_after = 0, fail_after

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t > self.fail_after:
            raise RuntimeError("boom: Faulty env exploded on purpose")
        return np.zeros(2, np.float32), 0.0, False, False, {}


register_env("Faulty-v0", Faulty)
