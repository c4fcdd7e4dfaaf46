"""The batched engine's hand-written backward (agents/stacked.py: mlp_forward, mlp_backward, loss_grad) and its
tanh, against autograd and torch.tanh."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlpop.agents.networks import log_prob_entropy
from rlpop.agents.ppo_loss import clipped_surrogate_loss, normalize_advantages, value_loss
from rlpop.agents.stacked import StackedActorCritic, mlp_backward, mlp_forward, tanh


def test_tanh_matches_torch_tanh_and_keeps_zero():
    x = torch.linspace(-12, 12, 200_001)
    assert (tanh(x.clone()) - torch.tanh(x)).abs().max().item() < 3e-7
    assert tanh(torch.zeros(5)).eq(0).all()          # an off unit (rlpop.agents.widths) stays exactly off
    # in place where autograd does not need the input; out of place (and differentiable) where it does
    y = torch.randn(7)
    out = tanh(y)
    assert out.data_ptr() == y.data_ptr()
    z = torch.randn(7, requires_grad=True)
    (g,) = torch.autograd.grad(tanh(z).sum(), z)
    assert torch.allclose(g, 1 - torch.tanh(z.detach()) ** 2, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_mlp_backward_is_autograds_gradient(k):
    g = torch.Generator().manual_seed(0)
    sizes = [5, 16, 8, 2]
    ws = [torch.randn(k, a, b, generator=g, dtype=torch.float64) * 0.5 for a, b in zip(sizes, sizes[1:])]
    bs = [torch.randn(k, b, generator=g, dtype=torch.float64) for b in sizes[1:]]
    x = torch.randn(k, 9, sizes[0], generator=g, dtype=torch.float64)
    g_out = torch.randn(k, 9, sizes[-1], generator=g, dtype=torch.float64)
    out, inputs = mlp_forward(x, ws, bs)
    gw, gb = mlp_backward(inputs, ws, g_out)
    # autograd through the plain formula, with torch.tanh
    leaves = [t.clone().requires_grad_(True) for t in ws + bs]
    h = x
    for i in range(3):
        h = torch.baddbmm(leaves[3 + i].unsqueeze(1), h, leaves[i])
        if i < 2:
            h = torch.tanh(h)
    assert torch.allclose(out, h.detach(), atol=1e-12)
    ref = torch.autograd.grad(h, leaves, g_out)
    for mine, theirs in zip(gw + gb, ref):
        assert torch.allclose(mine, theirs, atol=1e-10)


@pytest.mark.parametrize("discrete", [False, True])
def test_loss_grad_is_autograd_through_the_network(discrete):
    obs_space = spaces.Box(-1, 1, (6,), np.float32)
    act_space = spaces.Discrete(4) if discrete else spaces.Box(-1, 1, (3,), np.float32)
    net = StackedActorCritic(obs_space, act_space, (16, 16), 0.0, [1, 2, 3])
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(3, 32, 6, generator=g)
    act = torch.randint(0, 4, (3, 32), generator=g).float() if discrete else torch.randn(3, 32, 3, generator=g)
    old_logp, adv = torch.randn(3, 32, generator=g) - 2, torch.randn(3, 32, generator=g)
    ret, old_v = torch.randn(3, 32, generator=g), torch.randn(3, 32, generator=g)
    clip = torch.full((3, 1), 0.2)

    def loss_of(pp, values):
        logp, ent = log_prob_entropy(*pp, act, discrete)
        pg, _, _ = clipped_surrogate_loss(logp, old_logp, normalize_advantages(adv), clip)
        return (pg - 0.01 * ent.mean(-1) + 0.5 * value_loss(values, old_v, ret, None)).sum(), None

    flat = net.flat.clone()
    grad, extra, _ = net.loss_grad(obs, net.views(flat), loss_of)
    assert extra == [] and grad.shape == flat.shape
    leaf = flat.clone().requires_grad_(True)
    p = net.views(leaf)
    loss, _ = loss_of(net.policy_params(obs, p), net.value(obs, p))
    (ref,) = torch.autograd.grad(loss, leaf)
    assert torch.allclose(grad, ref, atol=1e-5, rtol=1e-4)
    assert grad.abs().sum() > 0
