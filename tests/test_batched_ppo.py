"""The batched engine: a member inside a batch learns exactly as it would alone, idle members cost nothing,
copies are slice copies, states are interchangeable with the per-member PPO, and the batch learns."""
import numpy as np
import pytest
import torch

from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.ppo import PPO
from rlpop.agents.stacked import adam_step, clip_grad_norm_per_member

BASE = {"rollout_steps": 128, "envs_per_actor": 2, "env_backend": "gym"}
# every hyperparameter a population may change, different per member (two minibatch sizes: two groups)
HPS = [
    {**BASE, "lr": 1e-3, "clip": 0.2, "epochs": 3, "minibatch_size": 32},
    {**BASE, "lr": 3e-4, "clip": 0.3, "epochs": 2, "minibatch_size": 32, "ent_coef": 0.01, "vf_clip": 0.0,
     "gamma": 0.95, "gae_lambda": 0.9, "vf_coef": 0.25},
    {**BASE, "lr": 5e-4, "epochs": 2, "minibatch_size": 64, "max_grad_norm": 0.05},
]


def _stack(rollouts):
    ro = {k: np.stack([getattr(r, k) for r in rollouts], 1)
          for k in ("obs", "actions", "logprobs", "rewards", "terminated", "truncated", "next_obs")}
    ro["valid"] = None
    return ro


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_member_in_a_batch_updates_exactly_as_alone(threads, monkeypatch):
    """threads=2: the members are split over two parallel update threads (as large batches are)."""
    monkeypatch.setattr(BatchedPPO, "MIN_CHUNK", 1)
    env = "Pendulum-v1"
    singles = [PPO(env, h, seed=10 + i) for i, h in enumerate(HPS)]
    batch = BatchedPPO(env, HPS, [10 + i for i in range(len(HPS))], update_threads=threads)
    try:
        for i, s in enumerate(singles):
            assert _max_diff(s.net.state_dict(), batch.net.member_state_dict(i)) == 0.0  # same init
            s.train(128)  # some optimiser and normaliser state first
            batch.set_state(i, s.get_state())
            s.set_state(s.get_state())  # both restart their episodes (and reward scalers' running returns)
        rollouts = [s._ensure_pool().collect(s.actor_weights(), s._obs_norm(), 64) for s in singles]
        ro = _stack(rollouts)
        ro["stats"] = batch.obs_stats([0, 1, 2])
        single_metrics = [s.learn(r) for s, r in zip(singles, rollouts)]
        batch_metrics = batch.learn([0, 1, 2], ro)
        for i, s in enumerate(singles):
            assert _max_diff(s.net.state_dict(), batch.net.member_state_dict(i)) < 1e-5, f"member {i} weights"
            so, bo = s.opt.state_dict()["state"], batch.get_state(i)["opt"]["state"]
            assert float(so[0]["step"]) == float(bo[0]["step"])
            for j in so:
                assert torch.allclose(so[j]["exp_avg_sq"], bo[j]["exp_avg_sq"], atol=1e-8, rtol=1e-4)
            np.testing.assert_allclose(s.obs_rms.mean, batch.obs_rms[i].mean)
            assert single_metrics[i]["approx_kl"] == pytest.approx(batch_metrics[i]["approx_kl"], rel=1e-3, abs=1e-7)
        # a member's state is a PPO state: it loads into the per-member learner and back
        solo = PPO(env, HPS[0], seed=99)
        solo.set_state(batch.get_state(0))
        assert _max_diff(solo.net.state_dict(), batch.net.member_state_dict(0)) == 0.0
        solo.close()
    finally:
        batch.close()
        for s in singles:
            s.close()


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
