"""Reward scaling (agents/normalize.py): the vectorised pass over K members against a plain reference, and a
member's numbers independent of the members beside it."""
import numpy as np
import pytest

from rlpop.agents.normalize import RewardScaler, RunningMeanStd, scale_rewards


def reference_scale(rewards, dones, valid, gamma, clip=10.0):
    """gymnasium NormalizeReward's rule written plainly for one member: [T, N] -> [T, N]."""
    rms, ret = RunningMeanStd(()), np.zeros(rewards.shape[1])
    out = np.empty_like(rewards, dtype=np.float32)
    for t in range(len(rewards)):
        ret = ret * gamma + rewards[t]
        x = ret if valid is None else ret[valid[t]]
        if x.size:
            rms.update(x)
        out[t] = np.clip(rewards[t] / np.sqrt(rms.var + 1e-8), -clip, clip)
        ret[dones[t]] = 0.0
    return out, rms


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("with_valid", [False, True])
def test_scale_rewards_matches_reference_and_each_member_alone(n, with_valid):
    rng = np.random.default_rng(n)
    T, K = 200, 4
    rewards = rng.normal(2.0, 3.0, (T, K, n)).astype(np.float32)
    dones = rng.random((T, K, n)) < 0.03
    valid = rng.random((T, K, n)) < 0.8 if with_valid else None
    if with_valid:
        valid[5, 1] = False  # a step where one member has no transition at all keeps its statistics
    gammas = [0.99, 0.9, 0.999, 0.95]
    scalers = [RewardScaler(n, g) for g in gammas]
    together = scale_rewards(scalers, rewards, dones, valid)
    for i, g in enumerate(gammas):
        v = None if valid is None else valid[:, i]
        ref, rms = reference_scale(rewards[:, i], dones[:, i], v, g)
        np.testing.assert_allclose(together[:, i], ref, rtol=1e-6, atol=1e-6)
        assert scalers[i].rms.count == pytest.approx(rms.count)
        alone = RewardScaler(n, g).scale(rewards[:, i], dones[:, i], v)
        assert np.array_equal(alone, together[:, i])  # bitwise: the members beside it change nothing


def test_scale_rewards_continues_the_running_returns():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(100, 2, 2)).astype(np.float32)
    dones = np.zeros((100, 2, 2), bool)
    whole = scale_rewards([RewardScaler(2, 0.99), RewardScaler(2, 0.99)], rewards, dones)
    split = [RewardScaler(2, 0.99), RewardScaler(2, 0.99)]
    first = scale_rewards(split, rewards[:60], dones[:60])
    second = scale_rewards(split, rewards[60:], dones[60:])
    assert np.array_equal(np.concatenate([first, second]), whole)
