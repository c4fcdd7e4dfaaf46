"""PPO loss functions (rlpop.agents.ppo_loss) against hand-computed values on tiny batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlpop.agents.ppo_loss import clipped_surrogate_loss, gae, normalize_advantages, value_loss


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def col(x, dtype=np.float32):
    """One env: a time-major ``[T, 1]`` array."""
    return np.asarray(x, dtype=dtype).reshape(-1, 1)


def flags(x):
    return col(x, dtype=bool)


# ---------------------------------------------------------------- GAE
# A 3-step rollout with no episode end: next_values[t] = values[t + 1], and the last one bootstraps the
# rollout's end with V = 2.
R3, V3, NV3 = [1.0, 2.0, 3.0], [0.5, 1.0, 1.5], [1.0, 1.5, 2.0]
NO_END3 = [False, False, False]


def test_gae_matches_the_hand_computed_recursion():
    # gamma = lam = 0.5: delta = r + 0.5 V' - V = [1.0, 1.75, 2.5]; A_t = delta_t + 0.25 A_{t+1}
    adv, ret = gae(col(R3), col(V3), col(NV3), flags(NO_END3), flags(NO_END3), gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv[:, 0], [1.59375, 2.375, 2.5], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.09375, 3.375, 4.0], rtol=1e-6)  # A + V
    assert adv.shape == ret.shape == (3, 1) and adv.dtype == np.float32


# A 4-step rollout whose episode ends after step 1; next_values[1] = 8 is V of the true final observation.
R4, V4, NV4 = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], [1.0, 8.0, 1.0, 2.0]
END_AT_1 = [False, True, False, False]


def test_gae_termination_does_not_bootstrap_and_cuts_the_recursion():
    adv, ret = gae(col(R4), col(V4), col(NV4), flags(END_AT_1), flags([False] * 4), gamma=0.5, lam=0.5)
    # delta = [1 + 0.5 - 1, 2 + 0 - 1, 3 + 0.5 - 1, 4 + 1 - 1] = [0.5, 1, 2.5, 4]  (no V(final obs) at t=1)
    # A3 = 4, A2 = 2.5 + 0.25 * 4 = 3.5, A1 = 1 (the next episode's advantage does not flow back), A0 = 0.5 + 0.25
    np.testing.assert_allclose(adv[:, 0], [0.75, 1.0, 3.5, 4.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [1.75, 2.0, 4.5, 5.0], rtol=1e-6)


def test_gae_truncation_bootstraps_from_the_final_observation_and_cuts_the_recursion():
    adv, ret = gae(col(R4), col(V4), col(NV4), flags([False] * 4), flags(END_AT_1), gamma=0.5, lam=0.5)
    # delta1 = 2 + 0.5 * V(final obs) - 1 = 2 + 4 - 1 = 5; A1 = 5 (cut); A0 = 0.5 + 0.25 * 5
    np.testing.assert_allclose(adv[:, 0], [1.75, 5.0, 3.5, 4.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.75, 6.0, 4.5, 5.0], rtol=1e-6)


def test_gae_envs_are_independent_columns():
    # env 0 terminates after step 1, env 1 is truncated there: each column is its own single-env result
    both = lambda x: np.stack([np.asarray(x), np.asarray(x)], axis=1)  # noqa: E731
    term = np.stack([END_AT_1, [False] * 4], axis=1)
    trunc = np.stack([[False] * 4, END_AT_1], axis=1)
    adv, _ = gae(both(R4).astype(np.float32), both(V4).astype(np.float32), both(NV4).astype(np.float32),
                 term, trunc, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv[:, 0], [0.75, 1.0, 3.5, 4.0], rtol=1e-6)
    np.testing.assert_allclose(adv[:, 1], [1.75, 5.0, 3.5, 4.0], rtol=1e-6)


def test_gae_lambda_one_is_the_discounted_return_minus_the_value():
    # bootstrapped discounted return, gamma = 0.5: G2 = 3 + 0.5 * 2 = 4, G1 = 2 + 0.5 * 4 = 4, G0 = 1 + 0.5 * 4 = 3
    adv, ret = gae(col(R3), col(V3), col(NV3), flags(NO_END3), flags(NO_END3), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(ret[:, 0], [3.0, 4.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(adv[:, 0], np.array([3.0, 4.0, 4.0]) - V3, rtol=1e-6)
    # with a termination after step 1 the return of steps 0-1 stops there: G1 = 2, G0 = 1 + 0.5 * 2 = 2
    adv, ret = gae(col(R4), col(V4), col(NV4), flags(END_AT_1), flags([False] * 4), gamma=0.5, lam=1.0)
    # G3 = 4 + 0.5 * 2 = 5, G2 = 3 + 0.5 * 5 = 5.5
    np.testing.assert_allclose(ret[:, 0], [2.0, 2.0, 5.5, 5.0], rtol=1e-6)


def test_gae_lambda_zero_is_the_one_step_td_error():
    adv, ret = gae(col(R3), col(V3), col(NV3), flags(NO_END3), flags(NO_END3), gamma=0.5, lam=0.0)
    np.testing.assert_allclose(adv[:, 0], [1.0, 1.75, 2.5], rtol=1e-6)  # r + gamma V' - V
    np.testing.assert_allclose(ret[:, 0], [1.5, 2.75, 4.0], rtol=1e-6)  # the one-step TD target


def test_gae_gamma_edge_cases():
    # gamma = 0: only the immediate reward counts, whatever lambda
    adv, _ = gae(col(R3), col(V3), col(NV3), flags(NO_END3), flags(NO_END3), gamma=0.0, lam=0.9)
    np.testing.assert_allclose(adv[:, 0], [0.5, 1.0, 1.5], rtol=1e-6)  # r - V
    # gamma = lam = 1: the undiscounted sum of rewards plus the bootstrap, minus V
    adv, ret = gae(col(R3), col(V3), col(NV3), flags(NO_END3), flags(NO_END3), gamma=1.0, lam=1.0)
    np.testing.assert_allclose(ret[:, 0], [8.0, 7.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(adv[:, 0], [7.5, 6.0, 3.5], rtol=1e-6)


def test_gae_gamma_and_lambda_broadcast_per_env():
    r, v, nv = (np.repeat(col(x), 2, axis=1) for x in (R3, V3, NV3))
    z = np.zeros((3, 2), dtype=bool)
    adv, _ = gae(r, v, nv, z, z, gamma=np.array([0.5, 1.0]), lam=np.array([0.5, 1.0]))
    np.testing.assert_allclose(adv[:, 0], [1.59375, 2.375, 2.5], rtol=1e-6)
    np.testing.assert_allclose(adv[:, 1], [7.5, 6.0, 3.5], rtol=1e-6)


# ---------------------------------------------------------------- clipped surrogate
CLIP = 0.2
# (ratio, advantage, loss term, d term / d logp): -A * r where the unclipped term is the larger (pessimistic)
# one, else -A * clip(r) with zero gradient
CASES = [
    (1.1, 2.0, -2.2, -2.2),   # inside the range, A > 0
    (1.5, 2.0, -2.4, 0.0),    # above 1 + clip, A > 0: clipped at 1.2, no gradient
    (0.5, 2.0, -1.0, -1.0),   # below 1 - clip, A > 0: the unclipped term is the pessimistic one
    (0.5, -2.0, 1.6, 0.0),    # below 1 - clip, A < 0: clipped at 0.8, no gradient
    (1.5, -2.0, 3.0, 3.0),    # above 1 + clip, A < 0: the unclipped term is the pessimistic one
    (0.9, -2.0, 1.8, 1.8),    # inside the range, A < 0
]


@pytest.mark.parametrize("ratio, a, term, grad", CASES)
def test_clipped_surrogate_single_samples(ratio, a, term, grad):
    logp = t([math.log(ratio)]).requires_grad_()
    loss, _, clip_frac = clipped_surrogate_loss(logp, t([0.0]), t([a]), CLIP)
    assert loss.item() == pytest.approx(term)
    loss.backward()
    assert logp.grad.item() == pytest.approx(grad, abs=1e-12)
    assert clip_frac.item() == (1.0 if abs(ratio - 1) > CLIP else 0.0)


def test_clipped_surrogate_batch_mean_gradient_kl_and_clip_fraction():
    ratios, advs, terms, grads = (list(x) for x in zip(*CASES))
    old = t([0.3, -0.2, 0.1, 0.0, -0.4, 0.25])  # only the ratio matters, not the log-probs themselves
    logp = (old + t([math.log(r) for r in ratios])).requires_grad_()
    loss, approx_kl, clip_frac = clipped_surrogate_loss(logp, old, t(advs), CLIP)
    assert loss.item() == pytest.approx(sum(terms) / 6)  # 0.8 / 6
    loss.backward()
    np.testing.assert_allclose(logp.grad.numpy(), np.array(grads) / 6, atol=1e-12)
    assert approx_kl.item() == pytest.approx(np.mean([(r - 1) - math.log(r) for r in ratios]))
    assert clip_frac.item() == pytest.approx(4 / 6)
    # a weight of 0 removes a sample from every mean
    w = t([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    loss_w, _, clip_w = clipped_surrogate_loss(logp.detach(), old, t(advs), CLIP, weight=w)
    assert loss_w.item() == pytest.approx((-2.2 - 2.4 + 3.0) / 3)
    assert clip_w.item() == pytest.approx(2 / 3)


def test_clipped_surrogate_stacked_members_equal_each_alone():
    ratios, advs, _, _ = (list(x) for x in zip(*CASES))
    logp = t([math.log(r) for r in ratios])
    a, b = logp, logp.flip(0)
    alone = [clipped_surrogate_loss(x, torch.zeros(6, dtype=torch.float64), t(advs), c)[0].item()
             for x, c in ((a, 0.2), (b, 0.5))]
    stacked, _, _ = clipped_surrogate_loss(torch.stack([a, b]), torch.zeros(2, 6, dtype=torch.float64),
                                           t([advs, advs]), t([[0.2], [0.5]]))
    assert stacked.shape == (2,)
    np.testing.assert_allclose(stacked.numpy(), alone, rtol=1e-12)


# ---------------------------------------------------------------- value loss
def test_value_loss_unclipped_and_clipped():
    values, old, returns = t([2.0, 0.0]), t([1.0, 1.0]), t([3.0, 0.5])
    # unclipped: 0.5 * mean((2 - 3)^2, (0 - 0.5)^2) = 0.5 * 0.625
    assert value_loss(values, old, returns, None).item() == pytest.approx(0.3125)
    assert value_loss(values, old, returns, math.inf).item() == pytest.approx(0.3125)  # infinite clip = none
    # clip 0.5: sample 0 -> 1.5, (1.5 - 3)^2 = 2.25 > 1; sample 1 -> 0.5, (0.5 - 0.5)^2 = 0 < 0.25
    v = values.clone().requires_grad_()
    loss = value_loss(v, old, returns, 0.5)
    assert loss.item() == pytest.approx(0.5 * (2.25 + 0.25) / 2)
    loss.backward()
    # sample 0 uses the clipped prediction (no gradient); sample 1 the raw one: 0.5 * 2 * (0 - 0.5) / 2
    np.testing.assert_allclose(v.grad.numpy(), [0.0, -0.25], atol=1e-12)


# ---------------------------------------------------------------- advantage normalisation
def test_normalize_advantages():
    out = normalize_advantages(t([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out.numpy(), [-1.0, 0.0, 1.0], atol=1e-7)  # unbiased std of [1, 2, 3] is 1
    assert normalize_advantages(t([5.0])).tolist() == [0.0]  # a single sample is only centred
    # weighted: the statistics of the weight-1 samples only ([1, 3]: mean 2, unbiased std sqrt(2))
    out = normalize_advantages(t([1.0, 3.0, 100.0]), weight=t([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(out[:2].numpy(), [-1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-7)
