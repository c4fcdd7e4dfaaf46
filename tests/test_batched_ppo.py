"""PPO (the batched learner): each member's update is the PPO update written with the pure loss functions of
rlpop.agents.ppo_loss on one plain network, whatever members share its batch; idle members cost nothing,
copies are slice copies, and the batch learns."""
import copy

import numpy as np
import pytest
import torch

from rlpop import streams
from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.networks import ActorCritic
from rlpop.agents.normalize import RewardScaler, normalize_obs
from rlpop.agents.ppo_loss import clipped_surrogate_loss, gae, normalize_advantages, value_loss
from rlpop.agents.stacked import adam_step, clip_grad_norm_per_member

BASE = {"rollout_steps": 128, "envs_per_actor": 2, "env_backend": "gym"}
# every hyperparameter a population may change, different per member (two minibatch sizes: two groups)
HPS = [
    {**BASE, "lr": 1e-3, "clip": 0.2, "epochs": 3, "minibatch_size": 32},
    {**BASE, "lr": 3e-4, "clip": 0.3, "epochs": 2, "minibatch_size": 32, "ent_coef": 0.01, "vf_clip": 0.0,
     "gamma": 0.95, "gae_lambda": 0.9, "vf_coef": 0.25},
    {**BASE, "lr": 5e-4, "epochs": 2, "minibatch_size": 64, "max_grad_norm": 0.05},
]


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def reference_update(learner: BatchedPPO, k: int, state: dict, ro: dict, i: int) -> tuple[ActorCritic, dict]:
    """One PPO update of member ``k`` (its data at position ``i`` of the rollout) from its ``state`` before
    it: a plain ``ActorCritic`` and ``torch.optim.Adam`` loaded from the state, the losses of
    rlpop.agents.ppo_loss, the member's own reward scaler and minibatch stream."""
    hp = state["hparams"]
    net = ActorCritic(learner.observation_space, learner.action_space, hp["hidden"], hp["init_log_std"])
    net.load_state_dict(state["net"])
    opt = torch.optim.Adam(net.parameters(), lr=hp["lr"], eps=1e-5)
    opt.load_state_dict(state["opt"])
    scaler = RewardScaler(learner.num_envs, hp["gamma"])
    scaler.load(state["reward_scaler"])
    rng = streams.minibatch_rng(0)
    streams.set_rng_state(rng, state[streams.KEY]["minibatch"])
    mean, var = ro["stats"][0][i], ro["stats"][1][i]
    T, _, N = ro["rewards"].shape
    norm = lambda o: torch.as_tensor(normalize_obs(o[:, i], mean, var)).reshape(T * N, -1)  # noqa: E731
    obs, next_obs = norm(ro["obs"]), norm(ro["next_obs"])
    rewards = scaler.scale(ro["rewards"][:, i], ro["terminated"][:, i] | ro["truncated"][:, i])
    with torch.no_grad():
        values = net.value(obs).numpy().reshape(T, N)
        next_values = net.value(next_obs).numpy().reshape(T, N)
    adv, ret = gae(rewards, values, next_values, ro["terminated"][:, i], ro["truncated"][:, i], hp["gamma"],
                   hp["gae_lambda"])
    b_adv, b_ret = torch.as_tensor(adv.reshape(-1)), torch.as_tensor(ret.reshape(-1))
    b_val = torch.as_tensor(values.reshape(-1))
    b_logp = torch.as_tensor(ro["logprobs"][:, i].reshape(-1))
    b_act = torch.as_tensor(ro["actions"][:, i].reshape(T * N, *ro["actions"].shape[3:]))
    batch = T * N
    mb = min(hp["minibatch_size"], batch)
    kls = []
    for _ in range(hp["epochs"]):
        perm = torch.as_tensor(rng.permutation(batch))
        for start in range(0, batch, mb):
            idx = perm[start:start + mb]
            logp, entropy = net.log_prob_entropy(obs[idx], b_act[idx])
            pg, kl, _ = clipped_surrogate_loss(logp, b_logp[idx], normalize_advantages(b_adv[idx]), hp["clip"])
            v = value_loss(net.value(obs[idx]), b_val[idx], b_ret[idx], hp["vf_clip"] or None)
            loss = pg - hp["ent_coef"] * entropy.mean() + hp["vf_coef"] * v
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), hp["max_grad_norm"])
            opt.step()
            kls.append(float(kl))
    return net, {"opt": opt.state_dict(), "approx_kl": float(np.mean(kls))}


@pytest.mark.parametrize("threads", [1, 2])
def test_each_members_update_is_the_reference_ppo_update(threads, monkeypatch):
    """threads=2: the members are split over two parallel update threads (as large batches are)."""
    monkeypatch.setattr(BatchedPPO, "MIN_CHUNK", 1)
    batch = BatchedPPO("Pendulum-v1", HPS, [10 + i for i in range(len(HPS))], update_threads=threads)
    try:
        batch.train([0, 1, 2], 128)  # some optimiser and normaliser state first
        ro = batch.collect([0, 1, 2], 64)
        before = [copy.deepcopy(batch.get_state(k)) for k in range(3)]
        metrics = batch.learn([0, 1, 2], ro)
        for k in range(3):
            net, ref = reference_update(batch, k, before[k], ro, k)
            after = batch.get_state(k)
            assert _max_diff(net.state_dict(), after["net"]) < 1e-5, f"member {k} weights"
            assert float(ref["opt"]["state"][0]["step"]) == float(after["opt"]["state"][0]["step"])
            for j, s in ref["opt"]["state"].items():
                assert torch.allclose(s["exp_avg_sq"], after["opt"]["state"][j]["exp_avg_sq"], atol=1e-8, rtol=1e-4)
            assert metrics[k]["approx_kl"] == pytest.approx(ref["approx_kl"], rel=1e-3, abs=1e-7)
    finally:
        batch.close()


def test_a_member_updates_exactly_as_in_a_batch_of_one():
    """What a member learns does not depend on the members beside it (a single run is a population of one)."""
    batch = BatchedPPO("Pendulum-v1", HPS, [10, 11, 12])
    alone = BatchedPPO("Pendulum-v1", [HPS[1]], [11])
    try:
        r_batch = batch.train([0, 1, 2], 256)[1]
        r_alone = alone.train([0], 256)[0]
        assert _max_diff(batch.net.member_state_dict(1), alone.net.member_state_dict(0)) == 0.0
        assert r_batch.episode_returns == r_alone.episode_returns and r_batch.metrics == r_alone.metrics
    finally:
        batch.close()
        alone.close()


def test_idle_members_step_no_env_and_take_no_update():
    b = BatchedPPO("Pendulum-v1", [BASE] * 3, [0, 1, 2])
    try:
        before = b.net.member_state_dict(1)
        out = b.train([0, 2], 256)
        assert set(out) == {0, 2} and all(r.steps == 256 for r in out.values())
        assert b.env_steps == [256, 0, 256] and b.updates == [2, 0, 2]
        assert _max_diff(before, b.net.member_state_dict(1)) == 0.0
        assert float(b.adam_steps[1]) == 0.0
    finally:
        b.close()


def test_copy_is_a_slice_copy_and_hparams_are_per_member():
    b = BatchedPPO("Pendulum-v1", [BASE] * 3, [0, 1, 2])
    try:
        b.train([0, 1, 2], 128)
        b.set_hparams(0, {"lr": 1.5e-3})
        b.copy_member(0, 2)
        assert _max_diff(b.net.member_state_dict(0), b.net.member_state_dict(2)) == 0.0
        assert b.get_hparams(2)["lr"] == 1.5e-3 and b.get_hparams(1)["lr"] == 3e-4
        res = b.train([1, 2], 128)
        assert res[2].metrics["lr"] == pytest.approx(1.5e-3) and res[1].metrics["lr"] == pytest.approx(3e-4)
        with pytest.raises(ValueError, match="hidden"):
            b.set_hparams(1, {"hidden": (32,)})
    finally:
        b.close()


def test_members_of_a_batch_must_share_shape_hparams():
    with pytest.raises(ValueError, match="rollout_steps"):
        BatchedPPO("Pendulum-v1", [BASE, {**BASE, "rollout_steps": 256}], [0, 1])


def test_batched_members_learn_corridor():
    b = BatchedPPO("Corridor-v0", [{"rollout_steps": 512, "envs_per_actor": 4, "lr": lr} for lr in (3e-4, 1e-3)],
                   [0, 1])
    try:
        returns = {0: [], 1: []}
        for _ in range(40):
            for m, r in b.train([0, 1], 512).items():
                returns[m] += r.episode_returns
            if all(len(v) >= 20 and np.mean(v[-20:]) >= 0.9 for v in returns.values()):
                break
        first = {m: np.mean(v[:20]) for m, v in returns.items()}
        last = {m: np.mean(v[-20:]) for m, v in returns.items()}
        for m in (0, 1):
            assert last[m] >= 0.9 and last[m] > first[m], f"member {m}: first {first[m]:.2f}, last {last[m]:.2f}"
    finally:
        b.close()


def test_adam_step_matches_torch_adam_and_masks_inactive_members():
    torch.manual_seed(0)
    p = torch.randn(3, 10)
    ref = [torch.nn.Parameter(p[i].clone()) for i in range(3)]
    lrs = [1e-2, 3e-3, 1e-3]
    opts = [torch.optim.Adam([ref[i]], lr=lrs[i], eps=1e-5) for i in range(3)]
    m, v, steps = torch.zeros(3, 10), torch.zeros(3, 10), torch.zeros(3, dtype=torch.float64)
    lr = torch.tensor(lrs, dtype=torch.float64)
    for it in range(5):
        g = torch.randn(3, 10)
        active = torch.tensor([True, it % 2 == 0, True])
        adam_step(p, g.clone(), m, v, steps, lr, active)
        for i in range(3):
            if active[i]:
                ref[i].grad = g[i].clone()
                opts[i].step()
    for i in range(3):
        assert torch.allclose(p[i], ref[i].detach(), atol=1e-6), i
    assert steps.tolist() == [5.0, 3.0, 5.0]


def test_masked_losses_equal_the_losses_on_the_valid_samples():
    """EnvPool's reset slots are weighted out: the loss is the plain loss over the real transitions."""
    torch.manual_seed(0)
    logp, old, adv = torch.randn(2, 12), torch.randn(2, 12), torch.randn(2, 12)
    values, old_v, ret = torch.randn(2, 12), torch.randn(2, 12), torch.randn(2, 12)
    w = torch.ones(2, 12)
    w[0, [1, 5, 7]] = 0.0
    clip = torch.tensor([[0.2], [0.3]])
    from rlpop.agents.ppo_loss import clipped_surrogate_loss, normalize_advantages, value_loss

    pg, kl, cf = clipped_surrogate_loss(logp, old, normalize_advantages(adv, w), clip, w)
    v = value_loss(values, old_v, ret, clip, w)

    keep = w[0].bool()
    pg0, kl0, _ = clipped_surrogate_loss(logp[0, keep], old[0, keep], normalize_advantages(adv[0, keep]), 0.2)
    assert float(pg[0]) == pytest.approx(float(pg0), rel=1e-5) and float(kl[0]) == pytest.approx(float(kl0), rel=1e-5)
    assert float(v[0]) == pytest.approx(float(value_loss(values[0, keep], old_v[0, keep], ret[0, keep], 0.2)), rel=1e-5)
    pg1, _, _ = clipped_surrogate_loss(logp[1], old[1], normalize_advantages(adv[1]), 0.3)
    assert float(pg[1]) == pytest.approx(float(pg1), rel=1e-5)


def test_a_dead_env_process_is_replaced_when_the_member_is_restored():
    import os
    import signal as sig

    from rlpop.agents.envbank import BankError

    b = BatchedPPO("Pendulum-v1", [{**BASE, "num_actors": 2, "envs_per_actor": 1}] * 2, [0, 1])
    try:
        b.train([0, 1], 128)
        state = b.get_state(0)
        os.kill(b.bank._procs[0].pid, sig.SIGKILL)
        with pytest.raises(BankError, match="Pendulum-v1"):
            b.train([0, 1], 128)
        b.set_state(0, state)  # what a backend's rebuild does: restore from the checkpoint
        out = b.train([0, 1], 128)
        assert out[0].steps == 128 and all(p.is_alive() for p in b.bank._procs)
    finally:
        b.close()


def test_per_member_gradient_clipping():
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    norms = clip_grad_norm_per_member(g, torch.tensor([1.0, 1.0]))
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    assert g[0].norm() == pytest.approx(1.0, abs=1e-5) and g[1].tolist() == pytest.approx([0.3, 0.4])
