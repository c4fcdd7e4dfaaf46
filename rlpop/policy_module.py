"""The exported policy's torch module (see :mod:`rlpop.policy`); kept free of ``from __future__ import
annotations`` so TorchScript can read its annotations."""
from typing import List, Optional

import numpy as np
import torch
from torch import nn

OBS_CLIP = 10.0


class PolicyModule(nn.Module):
    """Observation normaliser + policy network + deterministic action: float32 ``[B, obs_dim]`` -> actions
    (``[B]`` int64 for Discrete: argmax of the logits; ``[B, *action_shape]`` float32 for Box: the Gaussian's
    mean clipped to the action bounds)."""

    norm_obs: bool
    discrete: bool
    act_dim: int
    action_shape: List[int]

    def __init__(self, actor: nn.Sequential, discrete: bool, act_dim: int, action_shape: List[int],
                 mean: Optional[np.ndarray], var: Optional[np.ndarray], low: Optional[np.ndarray],
                 high: Optional[np.ndarray]):
        super().__init__()
        self.actor = actor
        self.discrete = bool(discrete)
        self.act_dim = int(act_dim)
        self.action_shape = [int(s) for s in action_shape]
        self.norm_obs = mean is not None
        obs_dim = int(actor[0].in_features)
        self.register_buffer("obs_mean", torch.as_tensor(mean if mean is not None else np.zeros(obs_dim),
                                                         dtype=torch.float64))
        self.register_buffer("obs_var", torch.as_tensor(var if var is not None else np.ones(obs_dim),
                                                        dtype=torch.float64))
        lo = np.full(act_dim, -np.inf) if low is None else np.asarray(low, np.float64).reshape(-1)
        hi = np.full(act_dim, np.inf) if high is None else np.asarray(high, np.float64).reshape(-1)
        self.register_buffer("low", torch.as_tensor(lo, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(hi, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.norm_obs:
            x = (obs.to(torch.float64) - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)
            x = x.clamp(-10.0, 10.0).to(torch.float32)  # OBS_CLIP
        else:
            x = obs.to(torch.float32)
        out = self.actor(x)
        if self.discrete:
            return out.argmax(-1)
        mean = out[:, :self.act_dim]
        return torch.minimum(torch.maximum(mean, self.low), self.high).reshape([-1] + self.action_shape)
