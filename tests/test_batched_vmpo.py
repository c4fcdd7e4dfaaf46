"""V-MPO (the batched learner): each member's update is the V-MPO update written with the pure functions of
rlpop.agents.vmpo_loss on plain networks (online and target networks, multipliers, PopArt), whatever members
share its batch, and the batch learns."""
import copy

import numpy as np
import pytest
import torch

from rlpop import streams
from rlpop.agents.batched_vmpo import BatchedVMPO
from rlpop.agents.networks import ActorCritic
from rlpop.agents.normalize import normalize_obs
from rlpop.agents.vmpo import popart_std
from rlpop.agents.vmpo_loss import (KLConstraint, categorical_kl, gaussian_cov_kl, gaussian_mean_kl,
                                    multiplier_value, nstep_targets, project_multipliers_, top_half_mask,
                                    top_half_mask_members, vmpo_loss, vmpo_loss_members)

SMALL = {"rollout_steps": 64, "envs_per_actor": 4, "minibatch_size": 32, "epochs": 2, "target_period": 3,
         "env_backend": "gym"}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((torch.as_tensor(a[k]) - torch.as_tensor(b[k])).abs().max()) for k in a)


class Reference:
    """One member of V-MPO on plain modules, loaded from its state: an ``ActorCritic`` and its target,
    ``torch.optim.Adam`` for the network and for the multipliers, PopArt as its paper writes it (Algorithm 1)."""

    def __init__(self, learner: BatchedVMPO, state: dict):
        hp = self.hp = state["hparams"]
        build = lambda: ActorCritic(learner.observation_space, learner.action_space, hp["hidden"],  # noqa: E731
                                    hp["init_log_std"], std=hp["std"])
        self.net, self.target = build(), build()
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hp["lr"])
        self.opt.load_state_dict(state["opt"])
        self.names = sorted(state["duals"])  # the state's dual optimiser keeps them in this order
        self.duals = {n: torch.nn.Parameter(state["duals"][n].clone()) for n in self.names}
        self.dual_opt = torch.optim.Adam([self.duals[n] for n in self.names])
        self.dual_opt.load_state_dict(state["dual_opt"])
        self.popart = None if state["popart"] is None else [state["popart"]["mean"], state["popart"]["sq_mean"]]
        self.rng = streams.minibatch_rng(0)
        streams.set_rng_state(self.rng, state[streams.KEY]["minibatch"])
        self.updates, self.target_updates = state["updates"], state["target_updates"]

    def std(self) -> float:
        mean, sq = self.popart
        return float(popart_std(np.sqrt(max(sq - mean ** 2, 0.0))))

    def value(self, obs):
        v = self.net.value(obs)
        return v if self.popart is None else v * self.std() + self.popart[0]

    def popart_update(self, targets):
        old_mean, old_std, b = self.popart[0], self.std(), self.hp["popart_beta"]
        self.popart = [(1 - b) * self.popart[0] + b * float(targets.double().mean()),
                       (1 - b) * self.popart[1] + b * float(targets.double().pow(2).mean())]
        head = self.net.critic[-1]
        with torch.no_grad():
            head.weight.mul_(old_std / self.std())
            head.bias.mul_(old_std).add_(old_mean - self.popart[0]).div_(self.std())

    def update(self, ro: dict, i: int) -> dict:
        hp, scheme = self.hp, self.hp["duals"]
        T, _, N = ro["rewards"].shape
        norm = lambda o: torch.as_tensor(normalize_obs(o[:, i], ro["stats"][0][i], ro["stats"][1][i])  # noqa: E731
                                         ).reshape(T * N, -1)
        obs, next_obs = norm(ro["obs"]), norm(ro["next_obs"])
        rewards = torch.as_tensor(ro["rewards"][:, i])
        term, trunc = torch.as_tensor(ro["terminated"][:, i]), torch.as_tensor(ro["truncated"][:, i])
        actions = torch.as_tensor(ro["actions"][:, i].reshape(T * N, *ro["actions"].shape[3:]))
        batch, mb = T * N, min(hp["minibatch_size"], T * N)
        metrics = {}
        for epoch in range(hp["epochs"]):
            with torch.no_grad():
                next_v = self.value(next_obs).reshape(T, N)
                targets = nstep_targets(rewards, next_v, term, trunc, hp["gamma"], hp["n_step"] or T).reshape(-1)
            if self.popart is not None and epoch == 0:
                self.popart_update(targets)
            perm = torch.as_tensor(self.rng.permutation(batch))
            for start in range(0, batch - mb + 1, mb):
                idx = perm[start:start + mb]
                o, a, g = obs[idx], actions[idx], targets[idx]
                if self.popart is not None:
                    g = (g - self.popart[0]) / self.std()
                mu, log_std = self.net.policy_params(o)
                with torch.no_grad():
                    mu_old, log_std_old = self.target.policy_params(o)
                m = {n: multiplier_value(p, scheme) for n, p in self.duals.items()}
                if self.net.discrete:
                    kls = [KLConstraint("pi", categorical_kl(mu, mu_old), m["alpha"], hp["eps_alpha"])]
                else:
                    kls = [KLConstraint("mu", gaussian_mean_kl(mu, mu_old, log_std_old.exp()), m["alpha_mu"],
                                        hp["eps_alpha_mu"]),
                           KLConstraint("sigma", gaussian_cov_kl(log_std.exp(), log_std_old.exp()), m["alpha_sigma"],
                                        hp["eps_alpha_sigma"])]
                logprob, _ = self.net.log_prob_entropy(o, a)
                loss, metrics = vmpo_loss(logprob, self.net.value(o), g, m["eta"], hp["eps_eta"], kls)
                self.opt.zero_grad()
                self.dual_opt.zero_grad()
                loss.backward()
                critic = list(self.net.critic.parameters())
                policy = [p for p in self.net.parameters() if all(p is not c for c in critic)]
                for part in (critic, policy):
                    torch.nn.utils.clip_grad_norm_(part, hp["max_grad_norm"])
                self.opt.step()
                self.dual_opt.step()
                if scheme == "paper":
                    for p in self.duals.values():
                        project_multipliers_(p.data)
                self.updates += 1
                if self.updates % hp["target_period"] == 0:
                    self.target.load_state_dict(self.net.state_dict())
                    self.target_updates += 1
        return metrics

    def multipliers(self) -> dict:
        return {n: float(multiplier_value(p.detach(), self.hp["duals"])) for n, p in self.duals.items()}


@pytest.mark.parametrize("env_id,extra", [("InvertedPendulum-v5", {"popart": True}), ("CartPole-v1", {}),
                                          # the earlier scheme: softplus multipliers in their own Adam
                                          ("InvertedPendulum-v5", {"duals": "softplus_adam"}),
                                          ("InvertedPendulum-v5", {"popart": True, "std": "state"})])
def test_each_members_update_is_the_reference_vmpo_update(env_id, extra):
    # every hyperparameter V-MPO lets a population change differs per member
    hps = [{**SMALL, **extra, "lr": 1e-3, "eps_eta": 0.02},
           {**SMALL, **extra, "lr": 3e-4, "eps_eta": 0.05, "gamma": 0.95, "max_grad_norm": 0.1}]
    batch = BatchedVMPO(env_id, hps, [5, 6])
    try:
        batch.train([0, 1], 4 * 64)  # moments, multipliers, PopArt statistics and a stale target first
        ro = batch.collect([0, 1], 16)
        refs = [Reference(batch, copy.deepcopy(batch.get_state(k))) for k in range(2)]
        metrics = batch.learn([0, 1], ro)
        for k, ref in enumerate(refs):
            ref_metrics = ref.update(ro, k)
            state = batch.get_state(k)
            assert _max_diff(ref.net.state_dict(), state["net"]) < 2e-5, f"member {k} online weights"
            assert _max_diff(ref.target.state_dict(), state["target"]) < 2e-5, f"member {k} target weights"
            assert not _max_diff(ref.net.state_dict(), state["target"]) < 1e-9  # the target is stale
            for name, v in ref.multipliers().items():
                assert state["multipliers"][name] == pytest.approx(v, rel=1e-4), name
            assert (ref.updates, ref.target_updates) == (state["updates"], state["target_updates"])
            if ref.popart is not None:
                assert state["popart"]["mean"] == pytest.approx(ref.popart[0], rel=1e-5)
            for name, v in ref_metrics.items():  # the losses and multipliers of the last minibatch
                assert metrics[k][name] == pytest.approx(v, rel=1e-3, abs=1e-6), name
    finally:
        batch.close()


def test_a_member_updates_exactly_as_in_a_batch_of_one():
    hps = [{**SMALL, "popart": True, "lr": lr} for lr in (1e-3, 3e-4)]
    batch = BatchedVMPO("InvertedPendulum-v5", hps, [5, 6])
    alone = BatchedVMPO("InvertedPendulum-v5", hps[1:], [6])
    try:
        r_batch, r_alone = batch.train([0, 1], 128)[1], alone.train([0], 128)[0]
        assert torch.equal(batch.net.flat[1], alone.net.flat[0])
        assert torch.equal(batch.target_flat[1], alone.target_flat[0]) and torch.equal(batch.duals[1], alone.duals[0])
        assert r_batch.metrics == r_alone.metrics
    finally:
        batch.close()
        alone.close()


def test_popart_preserves_unnormalised_outputs():
    """Hand-computed: statistics rate 0.5 from (mean 0, second moment 1) over targets {10, 30} -> mean 10,
    second moment 250.5, std sqrt(150.5); the value head is rescaled so unnormalised values do not move."""
    b = BatchedVMPO("InvertedPendulum-v5", [{**SMALL, "popart": True, "popart_beta": 0.5}], [0])
    try:
        obs = torch.randn(1, 5, b.observation_space.shape[0])
        before = b._unnormalised_value(obs, b.net.flat, [0]).clone()
        with torch.no_grad():
            b._popart_update(torch.tensor([[10.0, 30.0]]), b.net.flat, [0])
        assert b.popart_mean[0] == pytest.approx(10.0) and b.popart_sq[0] == pytest.approx(250.5)
        assert float(b._popart_std(np.arange(1))[0]) == pytest.approx(np.sqrt(150.5))
        assert torch.allclose(before, b._unnormalised_value(obs, b.net.flat, [0]), rtol=1e-5, atol=1e-5)
    finally:
        b.close()


def test_batched_loss_rows_equal_the_single_loss():
    torch.manual_seed(0)
    k, b = 3, 9
    logp, values, targets = torch.randn(k, b), torch.randn(k, b), torch.randn(k, b)
    eta, eps = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([0.01, 0.02, 0.05])
    kl, alpha = torch.rand(k, b), torch.tensor([0.1, 1.0, 3.0])
    total, metrics = vmpo_loss_members(logp, values, targets, eta, eps, [KLConstraint("mu", kl, alpha, 0.01)])
    for i in range(k):
        t, m = vmpo_loss(logp[i], values[i], targets[i], eta[i], float(eps[i]), [KLConstraint("mu", kl[i], alpha[i], 0.01)])
        assert float(total[i]) == pytest.approx(float(t), rel=1e-5)
        assert float(metrics["psi_max"][i]) == pytest.approx(m["psi_max"], rel=1e-5)
        assert torch.equal(top_half_mask_members(values - targets)[i], top_half_mask(values[i] - targets[i]))
    # reset slots are left out: the top half of the valid samples only
    valid = torch.ones(k, b, dtype=torch.bool)
    valid[0, :4] = False
    mask = top_half_mask_members(targets - values, valid)
    assert not mask[0, :4].any() and int(mask[0].sum()) == 3 and int(mask[1].sum()) == 5


def test_batched_vmpo_members_learn_cartpole():
    # faster than the defaults (V-MPO's Gym settings, sized for 1e9+ steps), as tests/test_vmpo.py's FAST
    fast = {"eps_eta": 0.02, "target_period": 10, "epochs": 2, "rollout_steps": 1024, "minibatch_size": 128}
    b = BatchedVMPO("CartPole-v1", [{**fast, "lr": lr, "env_backend": "gym"} for lr in (1e-3, 5e-4)], [0, 1])
    try:
        returns = {0: [], 1: []}
        # up to 100k steps (measured under rlpop.streams' seeds 0-7: 6 of 8 members above 195 by 60k, all by
        # 70k); the loop stops as soon as both are there
        for _ in range(10):
            for m, r in b.train([0, 1], 10_000).items():
                returns[m] += r.episode_returns
            if all(len(v) >= 20 and np.mean(v[-20:]) >= 195 for v in returns.values()):
                break
        for m, v in returns.items():
            assert np.mean(v[-20:]) >= 195 and np.mean(v[-20:]) > np.mean(v[:20]), f"member {m}"
    finally:
        b.close()


def test_batched_paper_duals_use_each_members_lr_and_are_projected():
    hps = [{**SMALL, "minibatch_size": 64, "epochs": 1, "lr": 1e-5},
           {**SMALL, "minibatch_size": 64, "epochs": 1, "lr": 1e-2, "eps_eta": 10.0}]
    b = BatchedVMPO("InvertedPendulum-v5", hps, [3, 4])
    try:
        b.duals[1, b.dual_names.index("eta")] = 1e-3  # eps_eta 10 > KL: Adam's first step (~1e-2) overshoots
        b.train([0, 1], 64)  # one update each
        for name, v in b.multipliers(0).items():  # member 0: a step of its own lr, not dual_lr's 1e-2
            assert abs(v - 1.0) == pytest.approx(1e-5, rel=1e-2), name
        assert b.multipliers(1)["eta"] == pytest.approx(1e-8, rel=1e-6)  # projected, never below 1e-8
        assert float(b.duals.min()) >= np.float32(1e-8)
        assert b.get_state(0)["dual_opt"]["param_groups"][0]["lr"] == 1e-5
        # PopArt's scale bounds [1e-2, 1e6] (V-MPO Sec. 4.2.2); inside them the scale is the std
        b.popart_mean[:], b.popart_sq[:] = [3.0, 0.0], [9.0, 1e14]
        assert b._popart_std(np.arange(2)).tolist() == [1e-2, 1e6]
        b.popart_mean[:], b.popart_sq[:] = [1.0, 1.0], [5.0, 5.0]
        assert b._popart_std(np.arange(2)).tolist() == pytest.approx([2.0, 2.0])
        other = BatchedVMPO("InvertedPendulum-v5", [{**SMALL, "duals": "softplus_adam"}], [0])
        with pytest.raises(ValueError, match="duals='softplus_adam'"):
            b.set_state(0, other.get_state(0))  # raw softplus parameters are not multipliers
        other.close()
    finally:
        b.close()


def test_stacked_state_dependent_std_is_the_single_networks():
    b = BatchedVMPO("InvertedPendulum-v5", [{**SMALL, "std": "state"}] * 2, [0, 1])
    try:
        assert b.net.state_std and "log_std" not in b.net.names
        obs = torch.as_tensor(np.stack([b.observation_space.sample() for _ in range(2)]), dtype=torch.float32)
        mean, log_std = b.net.policy_params(obs.expand(2, 2, -1))
        assert float((log_std[:, 0] - log_std[:, 1]).abs().min()) > 1e-5  # two observations, two stds
        for k in range(2):
            single = ActorCritic(b.observation_space, b.action_space, std="state")
            single.load_state_dict(b.net.member_state_dict(k))
            m1, s1 = single.policy_params(obs)
            assert torch.allclose(m1, mean[k], atol=1e-6) and torch.allclose(s1, log_std[k], atol=1e-6)
    finally:
        b.close()
