"""V-MPO losses as pure torch functions.

Reference: H. F. Song et al., "V-MPO: On-Policy Maximum a Posteriori Policy
Optimization for Discrete and Continuous Control", ICLR 2020
(arXiv:1909.12238). Equation numbers below are the paper's:

* Eq. (3)  n-step bootstrapped value target and the value loss
  ``L_V = 1/2 * mean (G^(n) - V(s))^2``.
* Eq. (5)  advantages ``A = G^(n) - V(s)``; the E-step keeps the top half
  of the batch by advantage (``D~``) and weights it by
  ``psi = softmax(A / eta)`` over ``D~``.
* Eq. (7)  policy (M-step) loss ``L_pi = -sum_{D~} psi log pi(a|s)``.
* Eq. (4)  temperature loss
  ``L_eta = eta * eps_eta + eta * log(mean_{D~} exp(A / eta))``.
* Eq. (8)-(10)  KL trust region ``L_alpha = mean_s [alpha (eps_alpha -
  sg[KL(pi_old || pi)]) + sg[alpha] KL(pi_old || pi)]``; for Gaussian
  policies the KL is decoupled into a mean part and a covariance part
  (appendix C / Abdolmaleki et al. 2018), each with its own multiplier.

Every function here is pure (no module state); the learner in
``rlpop.agents.vmpo`` owns the networks and the multipliers.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from rlpop.agents.networks import softplus_inverse

#: smallest value a Lagrange multiplier (eta, alpha) can take
MULTIPLIER_FLOOR = 1e-8


# --------------------------------------------------------------------------
# policy evaluation: n-step targets (Eq. 3)
# --------------------------------------------------------------------------
def nstep_targets(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float | torch.Tensor,
    n: int,
) -> torch.Tensor:
    """n-step bootstrapped returns ``G^(n)_t`` over a rollout (paper Eq. 3).

    ``G^(n)_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m})`` where the
    horizon ``m <= n`` is cut short where the episode ends or the rollout
    ends. All inputs are ``[T, N]`` (time, environment):

    * ``next_values[t]`` = ``V(next_obs[t])``, the value of the state reached
      after step ``t`` (for a truncated episode: its true final observation;
      for the last step: the state the next rollout starts from).
    * ``terminated[t]``: the episode ended in a terminal state -> nothing is
      bootstrapped past ``t`` (discount 0).
    * ``truncated[t]``: the episode was cut by a time limit -> bootstrap with
      ``V(final obs)`` = ``next_values[t]``.
    * The rollout's last step always bootstraps from ``next_values[T-1]``.

    ``n >= T`` gives the paper's usual choice of bootstrapping from the end
    of the unroll (each step uses every remaining reward of the rollout).
    The result carries no gradient. Trailing dimensions may be more than one
    (``[T, K, N]`` for K stacked members) with ``gamma`` a tensor that
    broadcasts against them (``[K, 1]``: one discount per member).
    """
    if rewards.ndim < 2:
        raise ValueError(f"rewards must be [T, N] (or [T, ...]), got shape {tuple(rewards.shape)}")
    for name, x in (("next_values", next_values), ("terminated", terminated),
                    ("truncated", truncated)):
        if x.shape != rewards.shape:
            raise ValueError(
                f"{name} must have the shape of rewards {tuple(rewards.shape)}, "
                f"got {tuple(x.shape)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not bool(torch.all((torch.as_tensor(gamma) >= 0) & (torch.as_tensor(gamma) <= 1))):
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    with torch.no_grad():
        dtype = torch.promote_types(next_values.dtype, torch.float32)
        rewards = rewards.to(dtype)
        next_values = next_values.to(dtype)
        term = terminated.bool()
        ends = term | truncated.bool()
        ends = ends.clone()
        ends[-1] = True  # the rollout's end bootstraps like a truncation
        gamma = torch.as_tensor(gamma, dtype=dtype, device=rewards.device)
        disc = gamma * (~term).to(dtype)
        # G^(1): one-step TD target; then G^(k)_t = r_t + disc_t *
        # (ends_t ? V(next_t) : G^(k-1)_{t+1}).
        g = rewards + disc * next_values
        for _ in range(min(n, rewards.shape[0]) - 1):
            cont = torch.empty_like(g)
            cont[:-1] = g[1:]
            cont[-1] = next_values[-1]
            g = rewards + disc * torch.where(ends, next_values, cont)
    return g


def value_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L_V = 1/2 mean (G^(n) - V(s))^2`` (paper Eq. 3); targets are detached."""
    if values.shape != targets.shape:
        raise ValueError(
            f"values {tuple(values.shape)} and targets {tuple(targets.shape)} "
            "must have the same shape")
    return 0.5 * (targets.detach() - values).pow(2).mean()


# --------------------------------------------------------------------------
# E-step: top half, weights psi, temperature loss (Eqs. 4, 5)
# --------------------------------------------------------------------------
def top_half_mask(advantages: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the top half of a batch by advantage (paper Sec. 4.1, D~).

    Keeps ``k = ceil(B / 2)`` samples of the ``B`` in the batch (any shape;
    ranked as flattened), so a batch of one keeps its sample and odd batches
    keep the middle one. Ties are broken deterministically: among equal
    advantages the sample with the lower flat index is kept.
    """
    if advantages.numel() == 0:
        raise ValueError("advantages is empty: the E-step needs at least one sample")
    if not torch.isfinite(advantages).all():  # one learner's batch: its failure (the batched rows are per member)
        raise ValueError("advantages contains NaN or inf: check the value targets")
    return top_half_mask_members(advantages.reshape(1, -1))[0].reshape(advantages.shape)


def _check_mask(advantages: torch.Tensor, mask: torch.Tensor) -> None:
    if mask.shape != advantages.shape:
        raise ValueError(
            f"mask {tuple(mask.shape)} must have the shape of advantages "
            f"{tuple(advantages.shape)}")
    if mask.dtype != torch.bool or not bool(mask.any()):
        raise ValueError("mask must be a boolean tensor selecting at least one sample")


def policy_e_step_weights(
    advantages: torch.Tensor, eta: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``psi(s, a) = exp(A/eta) / sum_{D~} exp(A/eta)`` on ``D~``, 0 elsewhere (Eq. 5).

    Neither the advantages nor ``eta`` receive gradient through ``psi``: the
    weights are targets of the M-step, and ``eta`` is learnt only by the
    temperature loss. Sums to 1 over the mask.
    """
    _check_mask(advantages, mask)
    scaled = advantages.detach() / eta.detach()
    scaled = scaled.masked_fill(~mask, float("-inf"))
    return torch.softmax(scaled.reshape(-1), dim=0).reshape(advantages.shape)


def weighted_ml_policy_loss(logprob: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """M-step policy loss ``L_pi = -sum psi log pi(a|s)`` (paper Eq. 7)."""
    if logprob.shape != psi.shape:
        raise ValueError(
            f"logprob {tuple(logprob.shape)} and psi {tuple(psi.shape)} must "
            "have the same shape")
    return -(psi.detach() * logprob).sum()


def temperature_loss(
    advantages: torch.Tensor, eta: torch.Tensor, eps_eta: float, mask: torch.Tensor
) -> torch.Tensor:
    """``L_eta = eta eps_eta + eta log(mean_{D~} exp(A / eta))`` (paper Eq. 4).

    Computed with log-sum-exp (the maximum is subtracted inside
    ``torch.logsumexp``) so it stays finite for ``|A/eta|`` in the thousands.
    Gradient: ``dL/deta = eps_eta - KL(psi || uniform on D~)``, so gradient
    descent raises ``eta`` (flatter ``psi``) while the weights are more
    peaked than ``eps_eta`` allows, and lowers it otherwise.
    """
    _check_mask(advantages, mask)
    if eps_eta <= 0:
        raise ValueError(f"eps_eta must be > 0, got {eps_eta}")
    scaled = (advantages.detach() / eta).masked_fill(~mask, float("-inf"))
    k = int(mask.sum())
    return eta * eps_eta + eta * (torch.logsumexp(scaled.reshape(-1), dim=0) - math.log(k))


# --------------------------------------------------------------------------
# M-step trust region: KLs and their Lagrange multipliers (Eqs. 8-10)
# --------------------------------------------------------------------------
def gaussian_mean_kl(
    mean: torch.Tensor, old_mean: torch.Tensor, old_std: torch.Tensor
) -> torch.Tensor:
    """Decoupled mean KL per state: ``KL(N(mu_old, S_old) || N(mu, S_old))``.

    For diagonal Gaussians this is ``1/2 sum_d (mu_d - mu_old_d)^2 / s_old_d^2``
    (paper appendix, decoupled KL): it uses the OLD (target) covariance, so
    the new covariance gets no gradient from it. Inputs ``[B, D]``, output ``[B]``.
    """
    old_var = old_std.detach().pow(2)
    return 0.5 * ((mean - old_mean.detach()).pow(2) / old_var).sum(-1)


def gaussian_cov_kl(std: torch.Tensor, old_std: torch.Tensor) -> torch.Tensor:
    """Decoupled covariance KL per state: ``KL(N(mu_old, S_old) || N(mu_old, S))``.

    For diagonal Gaussians: ``1/2 sum_d [s_old^2/s^2 - 1 + 2 log(s/s_old)]``
    (same mean, old vs new covariance; paper appendix). Inputs ``[B, D]``
    (a state-independent std broadcasts), output ``[B]``.
    """
    old_std = old_std.detach()
    ratio = old_std.pow(2) / std.pow(2)
    return 0.5 * (ratio - 1.0 - torch.log(ratio)).sum(-1)


def categorical_kl(logits: torch.Tensor, old_logits: torch.Tensor) -> torch.Tensor:
    """``KL(pi_old || pi)`` per state for categorical policies, ``[B, K] -> [B]``."""
    old_logp = torch.log_softmax(old_logits.detach(), dim=-1)
    logp = torch.log_softmax(logits, dim=-1)
    return (old_logp.exp() * (old_logp - logp)).sum(-1)


def positive(raw: torch.Tensor) -> torch.Tensor:
    """Map an unconstrained parameter to a Lagrange multiplier: ``softplus(raw) + 1e-8``.

    The ``duals="softplus_adam"`` scheme (rlpop's earlier one): keeps eta and
    the alphas strictly positive through a softplus. The paper's scheme
    (``duals="paper"``) learns the multipliers themselves and projects them
    with :func:`project_multipliers_` instead.
    """
    return F.softplus(raw) + MULTIPLIER_FLOOR


def inverse_positive(value: float) -> float:
    """The raw parameter with ``positive(raw) == value`` (for initialisation)."""
    if not value > MULTIPLIER_FLOOR:
        raise ValueError(f"a multiplier must start above {MULTIPLIER_FLOOR}, got {value}")
    return softplus_inverse(value - MULTIPLIER_FLOOR)


#: how the multipliers are learnt: "paper" -- the multipliers themselves, in the network's Adam at its lr,
#: projected to >= MULTIPLIER_FLOOR after each step (V-MPO Sec. 4.1); "softplus_adam" -- softplus(raw) + 1e-8,
#: the raw parameters in a separate Adam at ``dual_lr`` (rlpop's earlier scheme)
DUAL_SCHEMES = ("paper", "softplus_adam")


def multiplier_value(raw: torch.Tensor, scheme: str) -> torch.Tensor:
    """The multiplier a learnt parameter stands for under ``scheme`` (differentiable)."""
    return raw if scheme == "paper" else positive(raw)


def multiplier_raw(value: float, scheme: str) -> float:
    """The learnt parameter that starts the multiplier at ``value`` under ``scheme``."""
    if scheme == "paper":
        if not value >= MULTIPLIER_FLOOR:
            raise ValueError(f"a multiplier must start at >= {MULTIPLIER_FLOOR}, got {value}")
        return float(value)
    return inverse_positive(value)


@torch.no_grad()
def project_multipliers_(raw: torch.Tensor) -> torch.Tensor:
    """V-MPO's projection after each optimiser step, in place: ``eta, alpha >= 1e-8``
    (paper Sec. 4.1, "eta_min = alpha_min = 1e-8"). Returns ``raw``."""
    return raw.clamp_(min=MULTIPLIER_FLOOR)


def kl_penalty_losses(
    kl: torch.Tensor, alpha: torch.Tensor, eps_alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lagrangian trust-region terms (paper Eq. 10), averaged over states.

    Returns ``(policy_term, alpha_term)`` with ``policy_term = sg[alpha] *
    mean KL`` (pulls the policy toward the target) and ``alpha_term =
    alpha * (eps_alpha - sg[mean KL])`` (raises alpha while the KL exceeds
    its bound, lowers it otherwise).
    """
    if eps_alpha <= 0:
        raise ValueError(f"eps_alpha must be > 0, got {eps_alpha}")
    mean_kl = kl.mean()
    return alpha.detach() * mean_kl, alpha * (eps_alpha - mean_kl.detach())


class KLConstraint(NamedTuple):
    """One KL bound: per-state KL ``[B]``, its multiplier (a positive scalar
    tensor, with gradient), and the bound ``eps``."""

    name: str
    kl: torch.Tensor
    alpha: torch.Tensor
    eps: float


def vmpo_loss(
    logprob: torch.Tensor,
    values: torch.Tensor,
    targets: torch.Tensor,
    eta: torch.Tensor,
    eps_eta: float,
    kl_constraints: Sequence[KLConstraint],
    advantages: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The full V-MPO loss ``L_V + L_pi + L_eta + L_alpha`` (paper Eqs. 3-10).

    ``logprob``, ``values`` and ``targets`` are flat ``[B]`` batches (log
    pi(a|s) under the online policy, online V(s), and n-step targets G).
    Advantages default to ``targets - values`` (detached); pass
    ``advantages`` to use another scale (e.g. PopArt-normalised). Returns the
    scalar loss and float metrics for logging.
    """
    if advantages is None:
        advantages = targets.detach() - values.detach()
    advantages = advantages.detach()
    if logprob.shape != advantages.shape:
        raise ValueError(
            f"logprob {tuple(logprob.shape)} and advantages "
            f"{tuple(advantages.shape)} must have the same shape")
    mask = top_half_mask(advantages)
    psi = policy_e_step_weights(advantages, eta, mask)
    l_v = value_loss(values, targets)
    l_pi = weighted_ml_policy_loss(logprob, psi)
    l_eta = temperature_loss(advantages, eta, eps_eta, mask)
    total = l_v + l_pi + l_eta
    metrics: dict[str, float] = {
        "value_loss": l_v.detach().item(),
        "policy_loss": l_pi.detach().item(),
        "temperature_loss": l_eta.detach().item(),
        "eta": eta.detach().item(),
        "advantage_mean": advantages.mean().item(),
        "psi_max": psi.max().item(),
    }
    for c in kl_constraints:
        policy_term, alpha_term = kl_penalty_losses(c.kl, c.alpha, c.eps)
        total = total + policy_term + alpha_term
        metrics[f"kl_{c.name}"] = c.kl.detach().mean().item()
        metrics[f"alpha_{c.name}"] = c.alpha.detach().item()
    metrics["total_loss"] = total.detach().item()
    return total, metrics


# --------------------------------------------------------------------------
# the same loss for K stacked members (the batched engine)
# --------------------------------------------------------------------------
def valid_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last dimension of the samples where ``valid`` (bool, same shape) is True (all: None)."""
    if valid is None:
        return x.mean(-1)
    return torch.where(valid, x, torch.zeros_like(x)).sum(-1) / valid.sum(-1).clamp(min=1).to(x.dtype)


def top_half_mask_members(advantages: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`top_half_mask` of each row of ``advantages [K, B]`` (each member's own batch); with
    ``valid [K, B]``, the top half of each row's valid samples (ceil(n_valid / 2) of them). A stable
    descending sort keeps the lower index among equal advantages. Rows are independent: a row with NaN
    advantages (a diverged member) gets some mask and a non-finite loss, and fails that member alone."""
    adv = advantages.detach()
    if valid is None:
        k = (adv.shape[-1] + 1) // 2
        order = torch.sort(adv, dim=-1, descending=True, stable=True).indices
        return torch.zeros_like(adv, dtype=torch.bool).scatter_(-1, order[:, :k], True)
    order = torch.sort(adv.masked_fill(~valid, float("-inf")), dim=-1, descending=True, stable=True).indices
    pos = torch.arange(adv.shape[-1], device=adv.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(-1, order, pos)
    k = (valid.sum(-1, keepdim=True) + 1) // 2
    return (rank < k) & valid


def vmpo_loss_members(
    logprob: torch.Tensor,
    values: torch.Tensor,
    targets: torch.Tensor,
    eta: torch.Tensor,
    eps_eta: torch.Tensor,
    kl_constraints: Sequence[KLConstraint],
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`vmpo_loss` for K members at once: inputs ``[K, B]`` (each row one member's
    minibatch), ``eta`` and ``eps_eta`` ``[K]``, constraints with ``kl [K, B]`` and ``alpha [K]``.
    Returns each member's loss ``[K]`` -- row k equals ``vmpo_loss`` on member k's tensors -- and
    per-member metrics ``[K]`` (tensors, so no host sync per minibatch). ``valid [K, B]`` (EnvPool's
    reset slots are not transitions) leaves samples out of every term and metric: the E-step, the value
    loss, the KL means and the advantage mean."""
    adv = (targets.detach() - values.detach())
    if valid is not None:  # a row without a valid sample (vanishingly rare) keeps all of its samples
        valid = valid | ~valid.any(-1, keepdim=True)
    mask = top_half_mask_members(adv, valid)
    k = mask.sum(-1).to(adv.dtype)
    scaled_sg = (adv / eta.detach().unsqueeze(-1)).masked_fill(~mask, float("-inf"))
    psi = torch.softmax(scaled_sg, dim=-1)
    sq = (targets.detach() - values).pow(2)
    l_v = 0.5 * valid_mean(sq, valid)
    l_pi = -(psi * logprob).sum(-1)
    scaled = (adv / eta.unsqueeze(-1)).masked_fill(~mask, float("-inf"))
    l_eta = eta * eps_eta + eta * (torch.logsumexp(scaled, dim=-1) - torch.log(k))
    total = l_v + l_pi + l_eta
    metrics = {"value_loss": l_v.detach(), "policy_loss": l_pi.detach(), "temperature_loss": l_eta.detach(),
               "eta": eta.detach(), "advantage_mean": valid_mean(adv, valid), "psi_max": psi.max(-1).values}
    for c in kl_constraints:
        mean_kl = valid_mean(c.kl, valid)
        total = total + c.alpha.detach() * mean_kl + c.alpha * (c.eps - mean_kl.detach())
        metrics[f"kl_{c.name}"] = mean_kl.detach()
        metrics[f"alpha_{c.name}"] = c.alpha.detach()
    metrics["total_loss"] = total.detach()
    return total, metrics
