"""Small envs with spaces rlpop's MLP learners cannot take as they are (tests/test_wrappers.py).

Imported by id as ``"space_envs:DictObs-v0"`` (registered with gymnasium on import); a wrapper here records in
the env's info which process applied it."""
import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class _Base(gym.Env):
    def __init__(self):
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(np.sum(action) == 0), False, self.t >= 20, {}


class DictObs(_Base):
    observation_space = spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "flag": spaces.Discrete(2)})
    action_space = spaces.Discrete(2)

    def _obs(self):
        return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "flag": int(self.t % 2)}


class ImageObs(_Base):
    observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = spaces.Discrete(2)

    def _obs(self):
        return np.zeros((8, 8, 3), np.uint8)


class MultiDiscreteAct(_Base):
    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.MultiDiscrete([3, 2])

    def _obs(self):
        return np.zeros(3, np.float32)


class MarkPid(gym.Wrapper):
    """Adds the pid of the process that built the env to ``info`` at reset."""

    def __init__(self, env, tag="x"):
        super().__init__(env)
        self.tag = tag

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        return obs, {**info, "wrapped_in": os.getpid(), "tag": self.tag}


for _name in ("DictObs", "ImageObs", "MultiDiscreteAct"):
    gym.register(id=f"{_name}-v0", entry_point=f"space_envs:{_name}")
