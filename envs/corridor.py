"""Corridor-v0: a tiny deterministic env that PPO solves in seconds.

The agent starts at cell 0 of a corridor of ``length`` cells and moves left
(0) or right (1). Reaching the last cell ends the episode with reward +1; each
step costs 0.01; the episode is truncated after ``max_steps``. A random walk
rarely reaches the end in time (return around -0.5), the optimal policy
("always right") returns ``1 - 0.01 * (length - 1)``. Observation: the
position scaled to [0, 1] and the fraction of the time limit used.

It is the test env of rlpop and the example of a custom env: see
``envs/__init__.py`` for its one-line registration.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, length: int = 10, max_steps: int = 50):
        if length < 2:
            raise ValueError(f"Corridor: length must be >= 2, got {length}")
        self.length = int(length)
        self.max_steps = int(max_steps)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._pos = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self._pos / (self.length - 1), self._t / self.max_steps], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self._pos, self._t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self._pos = int(np.clip(self._pos + (1 if int(action) == 1 else -1), 0, self.length - 1))
        self._t += 1
        terminated = self._pos == self.length - 1
        reward = (1.0 if terminated else 0.0) - 0.01
        truncated = (not terminated) and self._t >= self.max_steps
        return self._obs(), reward, terminated, truncated, {}
