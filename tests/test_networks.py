"""Acting from pre-drawn noise (agents/networks.py): the pure functions, and a rollout's stored log-probabilities
against the policy that acted."""
import numpy as np
import torch

from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.networks import actions_from_noise, gaussian_noise_logp, log_prob_entropy


def test_gaussian_noise_logp_is_the_log_probability_of_the_action_it_makes():
    g = torch.Generator().manual_seed(0)
    log_std = torch.randn(3, 4, generator=g) * 0.5
    mean = torch.randn(5, 3, 2, 4, generator=g)
    noise = torch.randn(5, 3, 2, 4, generator=g)
    b = log_std[None, :, None, :].expand_as(mean)
    action, logp = actions_from_noise(mean, b, False, noise)
    assert torch.equal(action, mean + b.exp() * noise)
    torch.testing.assert_close(gaussian_noise_logp(log_std, noise), log_prob_entropy(mean, b, action, False)[0],
                               rtol=1e-5, atol=1e-5)
    assert torch.allclose(logp, log_prob_entropy(mean, b, action, False)[0])


def test_a_rollouts_log_probabilities_are_the_acting_policys():
    L = BatchedPPO("Pendulum-v1", [{"rollout_steps": 32, "envs_per_actor": 1, "init_log_std": -0.5}] * 2, [1, 2])
    try:
        ro = L.collect([0, 1], 32)
        x = torch.as_tensor(np.moveaxis(ro["obs"], 1, 0).reshape(2, 32, -1))
        from rlpop.agents.batched_base import normalize_members

        x = torch.as_tensor(normalize_members(x.numpy(), *ro["stats"]))
        act = torch.as_tensor(np.moveaxis(ro["actions"], 1, 0).reshape(2, 32, -1))
        want, _ = L.net.log_prob_entropy(x, act)
        got = torch.as_tensor(np.moveaxis(ro["logprobs"], 1, 0).reshape(2, 32))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    finally:
        L.close()
