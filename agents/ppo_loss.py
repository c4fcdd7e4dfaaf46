"""PPO's math as pure functions (Schulman et al. 2017; GAE: Schulman et al. 2016).

The losses reduce over the LAST dimension only, and coefficients broadcast, so
one call serves one member (``[B]`` samples, float coefficients) or K stacked
members (``[K, B]`` samples, coefficients shaped ``[K, 1]``) -- member k's
loss is then exactly what it would be alone. ``gae`` likewise broadcasts
``gamma`` and ``lam`` against the trailing ``[..., N]`` env dimensions.
"""
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
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = torch.max(-adv * ratio, -adv * clipped).mean(-1)
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean(-1)
        clip_frac = ((ratio - 1).abs() > clip).float().mean(-1)
    return loss, approx_kl, clip_frac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               clip: float | None) -> torch.Tensor:
    """0.5 * squared error, optionally with the PPO value clipping around the old values."""
    if clip is None:
        return 0.5 * (values - returns).pow(2).mean(-1)
    # an infinite clip (a member without value clipping, in a batch) is no clipping
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * torch.max((values - returns).pow(2), (clipped - returns).pow(2)).mean(-1)


def normalize_advantages(adv: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std over the last dimension (per minibatch, per member); a single sample is left centred."""
    if adv.shape[-1] < 2:
        return adv - adv.mean(-1, keepdim=True)
    return (adv - adv.mean(-1, keepdim=True)) / (adv.std(-1, keepdim=True) + 1e-8)
