"""PointReach: a small original env for experiments/custom_env_fire.py (a plain module, not installed).

A point in the square [-1, 1]^2 must reach a goal. Each episode draws the start and the goal uniformly.
Actions (Discrete(5)): stay, +x, -x, +y, -y, each a move of 0.1 (clipped to the square). Observation (Box, 4):
the position and the goal-minus-position vector. Reward: the decrease in distance to the goal each step
(shaping) minus 0.01; reaching within 0.1 of the goal ends the episode with +1. The time limit comes from the
registration (``max_episode_steps``). A random policy scores about -0.4 per episode (it rarely reaches
the goal in 50 steps); heading straight for it scores 1 + start distance - 0.01 x steps, ~1.9 on average.
"""
import gymnasium as gym
import numpy as np
from gymnasium import spaces

MOVES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32) * 0.1


class PointReach(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, radius: float = 0.1):
        self.radius = float(radius)
        self.observation_space = spaces.Box(-2.0, 2.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(len(MOVES))

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.goal - self.pos]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = self.np_random.uniform(-1, 1, size=(2, 2)).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        before = float(np.linalg.norm(self.goal - self.pos))
        self.pos = np.clip(self.pos + MOVES[int(action)], -1.0, 1.0)
        dist = float(np.linalg.norm(self.goal - self.pos))
        reached = dist < self.radius
        reward = before - dist - 0.01 + (1.0 if reached else 0.0)
        return self._obs(), reward, reached, False, {}
