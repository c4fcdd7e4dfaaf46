"""PPO's math as pure functions (Schulman et al. 2017; GAE: Schulman et al. 2016).

The losses reduce over the LAST dimension only, and coefficients broadcast, so
one call serves one member (``[B]`` samples, float coefficients) or K stacked
members (``[K, B]`` samples, coefficients shaped ``[K, 1]``) -- member k's
loss is then exactly what it would be alone. ``gae`` likewise broadcasts
``gamma`` and ``lam`` against the trailing ``[..., N]`` env dimensions.

An optional ``weight`` (same shape as the samples, 1 for a transition and 0
for a slot that is none -- EnvPool's reset steps) turns every mean over the
last dimension into the mean over the weighted samples; ``weight=None`` is the
plain mean.
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


def weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last dimension, of the samples with weight 1 when ``weight`` is given."""
    return x.mean(-1) if weight is None else (x * weight).sum(-1) / weight.sum(-1).clamp(min=1.0)


def clipped_surrogate_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float,
                           weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clip policy loss (eq. 7, negated to minimise).

    Returns (loss, approx_kl, clip_fraction); approx KL is the low-variance
    estimator E[(r - 1) - log r].
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = weighted_mean(torch.max(-adv * ratio, -adv * clipped), weight)
    with torch.no_grad():
        approx_kl = weighted_mean((ratio - 1) - log_ratio, weight)
        clip_frac = weighted_mean(((ratio - 1).abs() > clip).float(), weight)
    return loss, approx_kl, clip_frac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               clip: float | None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """0.5 * squared error, optionally with the PPO value clipping around the old values."""
    if clip is None:
        return 0.5 * weighted_mean((values - returns).pow(2), weight)
    # an infinite clip (a member without value clipping, in a batch) is no clipping
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * weighted_mean(torch.max((values - returns).pow(2), (clipped - returns).pow(2)), weight)


def normalize_advantages(adv: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Zero mean, unit std over the last dimension (per minibatch, per member); a single sample is left centred.
    With ``weight``: the mean and (unbiased) std of the weighted samples."""
    if weight is not None:
        n = weight.sum(-1, keepdim=True).clamp(min=1.0)
        mean = (adv * weight).sum(-1, keepdim=True) / n
        std = (((adv - mean) ** 2 * weight).sum(-1, keepdim=True) / (n - 1).clamp(min=1.0)).sqrt()
        return (adv - mean) / (std + 1e-8)
    if adv.shape[-1] < 2:
        return adv - adv.mean(-1, keepdim=True)
    return (adv - adv.mean(-1, keepdim=True)) / (adv.std(-1, keepdim=True) + 1e-8)
