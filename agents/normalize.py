"""Running statistics for observation normalisation and reward scaling.

Both are learner *state*: saved by ``get_state`` and copied with the weights
on an exploit, so a copied member sees observations exactly as its source did.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def merge_moments(mean, var, count, b_mean, b_var, b_count):
    """Mean, variance and count of two sets from each one's (parallel Welford / Chan et al.); element-wise."""
    delta = b_mean - mean
    tot = count + b_count
    m2 = var * count + b_var * b_count + delta**2 * count * b_count / tot
    return mean + delta * b_count / tot, m2 / tot, tot


class RunningMeanStd:
    """Mean and variance over a stream of batches (parallel Welford / Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1, *self.mean.shape)
        self.mean, self.var, self.count = merge_moments(self.mean, self.var, self.count, x.mean(0), x.var(0),
                                                        x.shape[0])

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
        return scale_rewards([self], rewards[:, None], dones[:, None],
                             None if valid is None else valid[:, None])[:, 0]

    def state(self) -> dict[str, Any]:
        return {"rms": self.rms.state(), "returns": self.returns.copy()}

    def load(self, s: dict[str, Any]) -> None:
        self.rms.load(s["rms"])
        self.returns = np.array(s["returns"])


def scale_rewards(scalers: list[RewardScaler], rewards: np.ndarray, dones: np.ndarray,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """:meth:`RewardScaler.scale` for K members at once: ``rewards``, ``dones``, ``valid`` are ``[T, K, N]``,
    ``scalers`` the K members' own scalers (updated in place). One pass over time for all members; every
    reduction is per member row, so a member's numbers do not depend on the members beside it (a test checks
    K members against each one alone)."""
    k, n = rewards.shape[1], rewards.shape[2]
    returns = np.stack([np.asarray(s.returns, np.float64) for s in scalers])           # [K, N]
    gamma = np.asarray([s.gamma for s in scalers], np.float64)[:, None]
    clip = np.asarray([s.clip for s in scalers], np.float64)[:, None]
    mean = np.asarray([float(s.rms.mean) for s in scalers], np.float64)
    var = np.asarray([float(s.rms.var) for s in scalers], np.float64)
    count = np.asarray([s.rms.count for s in scalers], np.float64)
    out = np.empty(rewards.shape, np.float32)
    for t in range(rewards.shape[0]):
        returns = returns * gamma + rewards[t]
        if valid is None:
            b_count = np.full(k, float(n))
            b_mean = returns.sum(1) / n
            dev = returns - b_mean[:, None]
            b_var = (dev * dev).sum(1) / n
        else:
            v = valid[t]
            b_count = v.sum(1).astype(np.float64)
            seen = b_count > 0
            safe = np.where(seen, b_count, 1.0)
            b_mean = np.where(v, returns, 0.0).sum(1) / safe
            dev = np.where(v, returns - b_mean[:, None], 0.0)
            b_var = (dev * dev).sum(1) / safe
        new_mean, new_var, tot = merge_moments(mean, var, count, b_mean, b_var, b_count)
        if valid is None:
            mean, var, count = new_mean, new_var, tot
        else:  # a member with no transition at t keeps its statistics
            mean, var, count = np.where(seen, new_mean, mean), np.where(seen, new_var, var), np.where(seen, tot, count)
        out[t] = np.clip(rewards[t] / np.sqrt(var[:, None] + 1e-8), -clip, clip)
        returns[dones[t]] = 0.0
    for i, s in enumerate(scalers):
        s.returns = returns[i].copy()
        s.rms.mean, s.rms.var, s.rms.count = np.array(mean[i]), np.array(var[i]), float(count[i])
    return out
