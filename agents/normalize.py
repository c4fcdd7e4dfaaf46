"""Running statistics for observation normalisation and reward scaling.

Both are learner *state*: saved by ``get_state`` and copied with the weights
on an exploit, so a copied member sees observations exactly as its source did.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Mean and variance over a stream of batches (parallel Welford / Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1, *self.mean.shape)
        b_mean, b_var, b_count = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_count
        self.mean = self.mean + delta * b_count / tot
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / tot
        self.var = m2 / tot
        self.count = tot

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load(self, s: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(s["mean"]), np.array(s["var"]), float(s["count"])


def normalize_obs(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """(obs - mean) / sqrt(var + 1e-8), clipped to [-clip, clip], as float32."""
    return np.clip((obs - mean) / np.sqrt(var + 1e-8), -clip, clip).astype(np.float32)


class RewardScaler:
    """Scales rewards by the std of the discounted return (as gymnasium's
    NormalizeReward), computed in the learner from time-ordered rollouts."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0):
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma = gamma
        self.clip = clip

    def scale(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """rewards, dones: [T, N]; returns the scaled rewards [T, N] (float32). ``valid`` [T, N]: slots
        that are not transitions (EnvPool's resets) stay out of the return statistics."""
        out = np.empty_like(rewards, dtype=np.float32)
        for t in range(rewards.shape[0]):
            self.returns = self.returns * self.gamma + rewards[t]
            if valid is None:
                self.rms.update(self.returns)
            elif valid[t].any():
                self.rms.update(self.returns[valid[t]])
            out[t] = np.clip(rewards[t] / np.sqrt(self.rms.var + 1e-8), -self.clip, self.clip)
            self.returns[dones[t]] = 0.0
        return out

    def state(self) -> dict[str, Any]:
        return {"rms": self.rms.state(), "returns": self.returns.copy()}

    def load(self, s: dict[str, Any]) -> None:
        self.rms.load(s["rms"])
        self.returns = np.array(s["returns"])
