"""V-MPO loss functions against hand-computed values on tiny batches."""
from __future__ import annotations

import math

import pytest
import torch

from rlpop.agents.vmpo_loss import (
    KLConstraint,
    categorical_kl,
    gaussian_cov_kl,
    gaussian_mean_kl,
    inverse_positive,
    kl_penalty_losses,
    multiplier_raw,
    multiplier_value,
    nstep_targets,
    policy_e_step_weights,
    positive,
    project_multipliers_,
    temperature_loss,
    top_half_mask,
    value_loss,
    vmpo_loss,
    weighted_ml_policy_loss,
)


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


# ---------------------------------------------------------------- n-step targets
def _nstep_naive(r, nv, term, trunc, gamma, n):
    """Loop-by-loop reference for one environment column."""
    T = len(r)
    out = []
    for s in range(T):
        g, disc = 0.0, 1.0
        for k in range(n):
            i = s + k
            g += disc * r[i]
            disc *= gamma
            if term[i]:
                break
            if trunc[i] or i == T - 1 or k == n - 1:
                g += disc * nv[i]
                break
        out.append(g)
    return out


def test_nstep_one_step_is_td_target():
    r = t([[1.0], [2.0], [3.0]])
    nv = t([[10.0], [20.0], [30.0]])
    z = torch.zeros(3, 1, dtype=torch.bool)
    g = nstep_targets(r, nv, z, z, gamma=0.5, n=1)
    assert torch.allclose(g, t([[6.0], [12.0], [18.0]]))


def test_nstep_full_rollout_bootstraps_from_end():
    r = t([[1.0], [2.0], [3.0]])
    nv = t([[10.0], [20.0], [30.0]])
    z = torch.zeros(3, 1, dtype=torch.bool)
    g = nstep_targets(r, nv, z, z, gamma=0.5, n=5)
    # G_2 = 3 + .5*30 = 18; G_1 = 2 + .5*18 = 11; G_0 = 1 + .5*11 = 6.5
    assert torch.allclose(g, t([[6.5], [11.0], [18.0]]))


def test_nstep_terminated_cuts_bootstrap_truncated_uses_final_value():
    r = t([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    nv = t([[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]])
    term = t([[False, False], [True, False], [False, False]], torch.bool)
    trunc = t([[False, False], [False, True], [False, False]], torch.bool)
    g = nstep_targets(r, nv, term, trunc, gamma=0.9, n=3)
    # env 0: step 1 terminal -> G_1 = 1, G_0 = 1 + .9*1 = 1.9; G_2 = 1 + .9*9
    # env 1: step 1 truncated -> G_1 = 1 + .9*7 = 7.3, G_0 = 1 + .9*7.3
    expect = t([[1.9, 1 + 0.9 * 7.3], [1.0, 7.3], [1 + 0.9 * 9, 1 + 0.9 * 9]])
    assert torch.allclose(g, expect)


def test_nstep_matches_naive_loop_on_random_rollout():
    gen = torch.Generator().manual_seed(0)
    T, N = 9, 4
    r = torch.randn(T, N, generator=gen, dtype=torch.float64)
    nv = torch.randn(T, N, generator=gen, dtype=torch.float64)
    term = torch.rand(T, N, generator=gen) < 0.2
    trunc = (torch.rand(T, N, generator=gen) < 0.2) & ~term
    for n in (1, 2, 4, 20):
        g = nstep_targets(r, nv, term, trunc, gamma=0.97, n=n)
        for j in range(N):
            ref = _nstep_naive(r[:, j].tolist(), nv[:, j].tolist(), term[:, j].tolist(),
                               trunc[:, j].tolist(), 0.97, n)
            assert g[:, j].tolist() == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_nstep_bad_input():
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="n must"):
        nstep_targets(z, z, z.bool(), z.bool(), 0.9, 0)
    with pytest.raises(ValueError, match="next_values"):
        nstep_targets(z, torch.zeros(3, 3), z.bool(), z.bool(), 0.9, 2)


def test_value_loss_half_mse():
    v = t([1.0, 2.0], torch.float64).requires_grad_()
    loss = value_loss(v, t([2.0, 4.0]))
    assert loss.item() == pytest.approx(0.5 * (1 + 4) / 2)
    loss.backward()
    assert v.grad.tolist() == pytest.approx([-0.5, -1.0])


# ---------------------------------------------------------------- top half
def test_top_half_even_and_odd_sizes():
    assert top_half_mask(t([0.1, 3.0, -1.0, 2.0])).tolist() == [False, True, False, True]
    # odd: keeps ceil(5/2) = 3
    assert top_half_mask(t([5.0, 1.0, 4.0, 2.0, 3.0])).tolist() == [True, False, True, False, True]
    assert top_half_mask(t([-7.0])).tolist() == [True]


def test_top_half_ties_keep_lowest_index():
    assert top_half_mask(t([1.0, 1.0, 1.0, 1.0])).tolist() == [True, True, False, False]
    assert top_half_mask(t([0.0, 2.0, 2.0, 2.0, 0.0])).tolist() == [False, True, True, True, False]
    assert top_half_mask(t([2.0, 0.0, 2.0, 2.0])).tolist() == [True, False, True, False]


def test_top_half_keeps_shape_and_rejects_nan():
    m = top_half_mask(t([[1.0, 4.0], [3.0, 2.0]]))
    assert m.tolist() == [[False, True], [True, False]]
    with pytest.raises(ValueError, match="advantages"):
        top_half_mask(t([1.0, float("nan")]))


# ---------------------------------------------------------------- E-step
def test_psi_is_softmax_over_top_half_and_sums_to_one():
    adv = t([1.0, 0.0, 3.0, -2.0])
    eta = t(2.0)
    mask = top_half_mask(adv)
    psi = policy_e_step_weights(adv, eta, mask)
    e1, e3 = math.exp(0.5), math.exp(1.5)
    assert psi.tolist() == pytest.approx([e1 / (e1 + e3), 0.0, e3 / (e1 + e3), 0.0])
    assert float(psi.sum()) == pytest.approx(1.0)


def test_psi_carries_no_gradient_to_eta_or_advantages():
    adv = t([1.0, 2.0]).requires_grad_()
    eta = t(1.0).requires_grad_()
    psi = policy_e_step_weights(adv, eta, torch.ones(2, dtype=torch.bool))
    assert not psi.requires_grad


def test_weighted_ml_policy_loss_value_and_gradient():
    logp = t([-1.0, -2.0, -0.5]).requires_grad_()
    psi = t([0.25, 0.75, 0.0])
    loss = weighted_ml_policy_loss(logp, psi)
    assert loss.item() == pytest.approx(0.25 + 1.5)
    loss.backward()
    assert logp.grad.tolist() == pytest.approx([-0.25, -0.75, 0.0])


def test_temperature_loss_equals_naive_formula():
    adv = t([0.3, -1.0, 2.0, 1.1, 0.0])
    eta = t(0.7)
    mask = top_half_mask(adv)  # 2.0, 1.1, 0.3
    got = temperature_loss(adv, eta, 0.05, mask)
    naive = 0.7 * 0.05 + 0.7 * math.log((math.exp(2.0 / 0.7) + math.exp(1.1 / 0.7)
                                         + math.exp(0.3 / 0.7)) / 3)
    assert got.item() == pytest.approx(naive, rel=1e-12)


def test_temperature_loss_finite_where_naive_overflows():
    adv = t([1000.0, 999.0, -1000.0, 0.0])
    eta = t(1.0)
    mask = top_half_mask(adv)
    naive = torch.log(torch.exp(adv[mask] / eta).mean())
    assert not torch.isfinite(naive)
    got = temperature_loss(adv, eta, 0.1, mask)
    # log mean(e^1000, e^999) = 1000 + log((1 + e^-1)/2)
    assert got.item() == pytest.approx(0.1 + 1000 + math.log((1 + math.exp(-1)) / 2), rel=1e-12)
    # and tiny eta (|A/eta| ~ 1e3 with small advantages)
    small = temperature_loss(t([1.0, -1.0]), t(1e-3), 0.1, t([True, False], torch.bool))
    assert math.isfinite(float(small)) and float(small) == pytest.approx(1e-4 + 1.0)


def _kl_psi_uniform(adv, eta, mask):
    psi = policy_e_step_weights(adv, eta, mask)[mask]
    k = psi.numel()
    return float((psi * torch.log(psi * k)).sum())


def test_temperature_gradient_is_eps_minus_kl_psi_uniform():
    """dL/deta = eps - KL(psi || uniform): derived from Eq. 4, checked by autograd."""
    adv = t([2.0, 0.5, 1.5, -3.0, 1.0, 0.0])
    mask = top_half_mask(adv)
    eta = t(0.4).requires_grad_()
    kl = _kl_psi_uniform(adv, eta, mask)
    assert kl > 0.05
    # eps too small for the batch's KL -> dL/deta < 0, gradient descent raises eta
    temperature_loss(adv, eta, 0.01, mask).backward()
    assert float(eta.grad) == pytest.approx(0.01 - kl, rel=1e-9)
    assert float(eta.grad) < 0
    # eps larger than the KL -> dL/deta > 0, eta shrinks
    eta.grad = None
    temperature_loss(adv, eta, kl + 0.5, mask).backward()
    assert float(eta.grad) == pytest.approx(0.5, rel=1e-9)


def test_temperature_descent_drives_kl_to_eps():
    adv = t([2.0, 0.5, 1.5, -3.0, 1.0, 0.0, 0.7, 2.2])
    mask = top_half_mask(adv)
    raw = torch.tensor(inverse_positive(0.1), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(800):
        opt.zero_grad()
        temperature_loss(adv, positive(raw), 0.02, mask).backward()
        opt.step()
    assert _kl_psi_uniform(adv, positive(raw), mask) == pytest.approx(0.02, abs=1e-3)


# ---------------------------------------------------------------- KL terms
def test_kls_are_zero_when_policy_equals_target():
    mu = t([[0.3, -1.0], [2.0, 0.5]])
    std = t([[0.5, 2.0], [1.0, 0.1]])
    assert gaussian_mean_kl(mu, mu.clone(), std).tolist() == [0.0, 0.0]
    assert gaussian_cov_kl(std, std.clone()).tolist() == pytest.approx([0.0, 0.0], abs=1e-15)
    logits = t([[0.1, 2.0, -1.0]])
    assert categorical_kl(logits, logits.clone()).tolist() == pytest.approx([0.0], abs=1e-15)


def test_mean_kl_divides_by_old_variance():
    mu_old = t([[0.0, 0.0]])
    mu = t([[1.0, 2.0]])
    kl1 = gaussian_mean_kl(mu, mu_old, t([[1.0, 1.0]]))
    assert kl1.tolist() == pytest.approx([0.5 * (1 + 4)])
    kl2 = gaussian_mean_kl(mu, mu_old, t([[2.0, 0.5]]))
    assert kl2.tolist() == pytest.approx([0.5 * (1 / 4 + 4 / 0.25)])


def test_gaussian_decoupled_kls_sum_to_full_kl_when_only_one_changes():
    mu_old, std_old = t([[0.2, -0.4]]), t([[0.7, 1.3]])
    mu_new, std_new = t([[0.9, 0.1]]), t([[0.5, 1.6]])
    full = lambda m, s: torch.distributions.kl_divergence(  # noqa: E731
        torch.distributions.Normal(mu_old, std_old), torch.distributions.Normal(m, s)).sum(-1)
    assert gaussian_mean_kl(mu_new, mu_old, std_old).tolist() == pytest.approx(
        full(mu_new, std_old).tolist(), rel=1e-12)
    assert gaussian_cov_kl(std_new, std_old).tolist() == pytest.approx(
        full(mu_old, std_new).tolist(), rel=1e-12)


def test_categorical_kl_direction_old_to_new():
    old, new = t([[0.0, math.log(3.0)]]), t([[0.0, 0.0]])  # p_old = (1/4, 3/4), p = (1/2, 1/2)
    expect = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert categorical_kl(new, old).tolist() == pytest.approx([expect], rel=1e-12)


def test_kl_penalty_gradients():
    kl = t([0.02, 0.04]).requires_grad_()
    raw = torch.tensor(inverse_positive(3.0), dtype=torch.float64, requires_grad=True)
    alpha = positive(raw)
    policy_term, alpha_term = kl_penalty_losses(kl, alpha, eps_alpha=0.01)
    assert policy_term.item() == pytest.approx(3.0 * 0.03)
    assert alpha_term.item() == pytest.approx(3.0 * (0.01 - 0.03))
    (policy_term + alpha_term).backward()
    assert kl.grad.tolist() == pytest.approx([1.5, 1.5])  # sg[alpha] / B, no alpha-term path
    # KL above its bound -> d(loss)/d(alpha) < 0 -> descent raises alpha
    assert float(raw.grad) < 0


def test_positive_floor_and_inverse():
    assert float(positive(t(-1e4))) == pytest.approx(1e-8, rel=1e-6)
    for v in (1e-3, 1.0, 5.0, 100.0):
        assert float(positive(t(inverse_positive(v)))) == pytest.approx(v, rel=1e-9)
    with pytest.raises(ValueError, match="multiplier"):
        inverse_positive(0.0)


def test_paper_multipliers_are_raw_and_projected_to_the_floor():
    # V-MPO Sec. 4.1: the multipliers are learnt directly and projected to >= 1e-8 after each step
    raw = t([-3.0, 0.0, 5e-9, 1e-8, 0.25])
    assert project_multipliers_(raw) is raw  # in place
    assert raw.tolist() == [1e-8, 1e-8, 1e-8, 1e-8, 0.25]
    assert multiplier_value(raw, "paper") is raw and multiplier_raw(2.5, "paper") == 2.5
    assert float(multiplier_value(t(multiplier_raw(2.5, "softplus_adam")), "softplus_adam")) == pytest.approx(2.5)
    # a descent step that would take eta below the floor ends at the floor
    eta = t(1e-6).requires_grad_()
    adv, mask = t([3.0, 1.0, 0.0, -1.0]), torch.tensor([True, True, False, False])
    temperature_loss(adv, eta, 10.0, mask).backward()  # eps_eta 10 > KL: dL/deta > 0, descent lowers eta
    assert float(eta.grad) > 0
    with torch.no_grad():
        eta -= 1.0 * eta.grad
    assert float(project_multipliers_(eta.data)) == 1e-8
    with pytest.raises(ValueError, match="multiplier"):
        multiplier_raw(0.0, "paper")


# ---------------------------------------------------------------- combined
def test_vmpo_loss_combines_terms():
    logp = t([-1.0, -2.0, -0.5, -1.5]).requires_grad_()
    values = t([0.0, 1.0, 0.5, 0.0]).requires_grad_()
    targets = t([1.0, 0.0, 2.0, 0.5])
    eta = t(1.0).requires_grad_()
    alpha = t(2.0).requires_grad_()
    kl = t([0.1, 0.1, 0.2, 0.0])
    total, m = vmpo_loss(logp, values, targets, eta, 0.1,
                         [KLConstraint("mu", kl, alpha, 0.05)])
    adv = [1.0, -1.0, 1.5, 0.5]  # top half: idx 0, 2
    e1, e2 = math.exp(1.0), math.exp(1.5)
    l_pi = (e1 * 1.0 + e2 * 0.5) / (e1 + e2)
    l_eta = 0.1 + math.log((e1 + e2) / 2)
    l_v = 0.5 * sum(a * a for a in adv) / 4
    l_kl = 2.0 * 0.1 + 2.0 * (0.05 - 0.1)
    assert total.item() == pytest.approx(l_pi + l_eta + l_v + l_kl, rel=1e-12)
    assert m["kl_mu"] == pytest.approx(0.1)
    assert m["alpha_mu"] == pytest.approx(2.0)
    total.backward()
    assert logp.grad[1] == 0 and logp.grad[3] == 0 and logp.grad[0] < 0
