"""Policy/value networks shared by rlpop's learners (PPO, V-MPO).

``ActorCritic`` is a pair of MLPs (tanh, orthogonal init as in CleanRL's PPO):
a policy head giving a Categorical (Discrete actions) or a diagonal Gaussian
(Box actions), and a value head. The Gaussian's std is either a free
state-independent log-std parameter (``std="param"``, CleanRL's PPO; PPO's
choice) or state-dependent (``std="state"``, V-MPO as the rlpyt port builds it):
the policy MLP outputs ``2 * act_dim`` values, the mean and a pre-softplus std,
``std = softplus(x) + STD_MIN``. The batched learners stack these networks' weights
(:mod:`rlpop.agents.stacked`); exported policies and ``rlpop evaluate`` run them as they are. Acting draws its
noise first (:func:`draw_noise`, :func:`actions_from_noise`), so one member's actions depend on its own stream.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

#: ``std="state"``: floor added to ``softplus(x)`` so the Gaussian's std never reaches 0 (rlpop's choice;
#: keeps ``log std`` finite where the softplus underflows)
STD_MIN = 1e-6
#: the Gaussian's std parametrisations (see the module docstring)
STD_KINDS = ("param", "state")


def state_log_std(raw: torch.Tensor) -> torch.Tensor:
    """``std="state"``: the policy net's pre-softplus outputs -> ``log(softplus(raw) + STD_MIN)``."""
    return torch.log(F.softplus(raw) + STD_MIN)


def softplus_inverse(v: float) -> float:
    """``x`` with ``softplus(x) == v`` for ``v > 0``: ``log(expm1(v)) = v + log(1 - exp(-v))``, the latter
    stable for large ``v``."""
    return float(v + math.log(-math.expm1(-v)))


def inverse_state_std(std: float) -> float:
    """The pre-softplus output giving ``std`` (initialises the std head's bias to ``exp(init_log_std)``)."""
    if not std - STD_MIN > 0:
        raise ValueError(f"the initial std must exceed STD_MIN={STD_MIN}, got {std}")
    return softplus_inverse(std - STD_MIN)


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [layer_init(nn.Linear(d, h)), nn.Tanh()]
        d = h
    layers.append(layer_init(nn.Linear(d, out_dim), std=out_std))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """MLP policy + value function for a flat Box observation space."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Space,
                 hidden: Sequence[int] = (64, 64), init_log_std: float = 0.0, std: str = "param"):
        super().__init__()
        if std not in STD_KINDS:
            raise ValueError(f"ActorCritic: std must be one of {STD_KINDS}, got {std!r}")
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(f"ActorCritic needs a Box observation space, got {observation_space}")
        obs_dim = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            act_out = int(action_space.n)
        elif isinstance(action_space, spaces.Box):
            act_out = int(np.prod(action_space.shape))
        else:
            raise ValueError(f"ActorCritic supports Discrete and Box actions, got {action_space}")
        self.action_shape = () if self.discrete else tuple(action_space.shape)
        #: True: the std is an output of the policy net (``std="state"``, Box actions only)
        self.state_std = std == "state" and not self.discrete
        self.critic = mlp(obs_dim, hidden, 1, out_std=1.0)
        self.actor = mlp(obs_dim, hidden, 2 * act_out if self.state_std else act_out, out_std=0.01)
        if self.state_std:
            # small output weights (0.01) and this bias: every state starts at std ~ exp(init_log_std)
            with torch.no_grad():
                self.actor[-1].bias[act_out:] = inverse_state_std(math.exp(float(init_log_std)))
        elif not self.discrete:
            self.log_std = nn.Parameter(torch.full((act_out,), float(init_log_std)))

    # -- distribution helpers (no torch.distributions: cheaper per minibatch) --
    def policy_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, None) for Discrete, (mean, log_std) for Box."""
        out = self.actor(obs)
        if self.discrete:
            return out, None
        if self.state_std:
            mean, raw = out.chunk(2, dim=-1)
            return mean, state_log_std(raw)
        return out, self.log_std.expand_as(out)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.policy_params(obs)
        return log_prob_entropy(a, b, actions, self.discrete)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample actions and their log-probabilities."""
        a, b = self.policy_params(obs)
        if not deterministic:
            return sample_actions(a, b, self.discrete, generator)
        if self.discrete:
            logp_all = torch.log_softmax(a, -1)
            action = logp_all.argmax(-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return a, log_prob_entropy(a, b, a, False)[0]


def draw_noise(shape: Sequence[int], discrete: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """The noise :func:`actions_from_noise` turns into actions: uniforms ``shape`` (Discrete: one per
    action) or standard normals ``shape`` (Box: ``[..., A]``), from a CPU ``generator``."""
    if discrete:
        return torch.rand(tuple(shape), generator=generator)
    return torch.randn(tuple(shape), generator=generator)


@torch.no_grad()
def actions_from_noise(a: torch.Tensor, b: torch.Tensor | None, discrete: bool,
                       noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions from policy parameters (logits, or mean and log-std; any leading dimensions, e.g. ``[K, N, A]``
    for K stacked members) and pre-drawn ``noise`` (:func:`draw_noise`), with their log-probabilities.

    Box: ``mean + std * noise``. Discrete: inverse-CDF sampling, the first action whose cumulative
    probability exceeds the uniform (the categorical distribution, as ``torch.multinomial``). Every sample
    depends only on its own row of parameters and noise, and non-finite parameters (a diverged member, a NaN
    observation) give a non-finite log-probability rather than an error, so one member's fault stays its own."""
    noise = noise.to(device=a.device, dtype=a.dtype)
    if discrete:
        logp_all = torch.log_softmax(a, -1)
        cdf = logp_all.exp().cumsum(-1)
        action = (noise.unsqueeze(-1) >= cdf).sum(-1).clamp(max=a.shape[-1] - 1)
        return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    action = a + b.exp() * noise
    return action, log_prob_entropy(a, b, action, False)[0]


@torch.no_grad()
def sample_actions(a: torch.Tensor, b: torch.Tensor | None, discrete: bool,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions sampled from policy parameters with noise drawn from ``generator`` (a CPU generator), and their
    log-probabilities (:func:`actions_from_noise`)."""
    return actions_from_noise(a, b, discrete, draw_noise(a.shape[:-1] if discrete else a.shape, discrete, generator))


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@torch.no_grad()
def gaussian_noise_logp(log_std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the actions ``mean + exp(log_std) * noise`` under their diagonal Gaussian, from the
    noise alone (``z = noise``; the mean cancels): ``log_std`` ``[K, A]`` (a state-independent std),
    ``noise`` ``[T, K, N, A]`` -> ``[T, K, N]``. A whole rollout's in one pass, before it is stepped."""
    return (-0.5 * noise.pow(2) - log_std[None, :, None, :] - _LOG_SQRT_2PI).sum(-1)


def log_prob_entropy(a: torch.Tensor, b: torch.Tensor | None, actions: torch.Tensor,
                     discrete: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and entropy, per sample.

    Discrete: ``a`` are logits. Box: ``a`` is the mean, ``b`` the log-std of a
    diagonal Gaussian (summed over action dimensions).
    """
    if discrete:
        logp_all = torch.log_softmax(a, -1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1)
        return logp, ent
    z = (actions - a) * torch.exp(-b)
    logp = (-0.5 * z.pow(2) - b - _LOG_SQRT_2PI).sum(-1)
    ent = (b + 0.5 + _LOG_SQRT_2PI).sum(-1)
    return logp, ent
