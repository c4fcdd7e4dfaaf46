"""PPO's math as pure functions (Schulman et al. 2017; GAE: Schulman et al. 2016)."""
from __future__ import annotations

import numpy as np
import torch


def gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
        truncated: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over time-major ``[T, N]`` arrays.

    ``next_values[t]`` is V of the observation after step t (the true final
    observation where an episode ended), so a *truncated* episode is
    bootstrapped with V(final obs) while a *terminated* one is not; the
    advantage recursion is cut at every episode end (GAE eq. 16 per episode).
    Returns (advantages, returns = advantages + values).
    """
    T = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1:], np.float32)
    not_term = 1.0 - terminated.astype(np.float32)
    not_done = 1.0 - (terminated | truncated).astype(np.float32)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values[t] * not_term[t] - values[t]
        last = delta + gamma * lam * not_done[t] * last
        adv[t] = last
    return adv, adv + values


def clipped_surrogate_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                           clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clip policy loss (eq. 7, negated to minimise).

    Returns (loss, approx_kl, clip_fraction); approx KL is the low-variance
    estimator E[(r - 1) - log r].
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_frac = ((ratio - 1).abs() > clip).float().mean()
    return loss, approx_kl, clip_frac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               clip: float | None) -> torch.Tensor:
    """0.5 * squared error, optionally with the PPO value clipping around the old values."""
    if clip is None:
        return 0.5 * (values - returns).pow(2).mean()
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.max((values - returns).pow(2), (clipped - returns).pow(2)).mean()


def normalize_advantages(adv: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std (per minibatch); a single sample is left centred."""
    if adv.numel() < 2:
        return adv - adv.mean()
    return (adv - adv.mean()) / (adv.std() + 1e-8)
