"""PPO, a single run (a population of one): it learns (discrete and continuous), its state round-trips, its
hparams reach the optimiser, fixed and unknown ones are refused."""
import numpy as np
import pytest
import torch

from rlpop.agents.batched_ppo import BatchedPPO


def one(env_id: str, hparams: dict, seed: int) -> BatchedPPO:
    return BatchedPPO(env_id, [hparams], [seed])


def train_until(agent: BatchedPPO, target: float, budget: int, window: int = 20) -> tuple[float, int]:
    """Train until the mean return of the last ``window`` episodes reaches ``target`` or the budget is spent."""
    returns, steps, best = [], 0, -np.inf
    while steps < budget:
        res = agent.train([0], agent.hps[0]["rollout_steps"])[0]
        steps += res.steps
        returns += res.episode_returns
        if len(returns) >= window:
            best = max(best, float(np.mean(returns[-window:])))
            if best >= target:
                break
    return best, steps


def test_learns_cartpole():
    hp = dict(rollout_steps=512, envs_per_actor=4, epochs=4, minibatch_size=128, lr=2.5e-4, ent_coef=0.01,
              norm_obs=False, norm_reward=False)
    agent = one("CartPole-v1", hp, seed=1)
    try:
        best, steps = train_until(agent, 195.0, 60_000)
    finally:
        agent.close()
    assert best >= 195.0, f"CartPole-v1: best mean-of-20 return {best:.1f} within {steps} steps"


def test_learns_inverted_pendulum_continuous():
    agent = one("InvertedPendulum-v5", {"rollout_steps": 1024, "envs_per_actor": 4, "env_backend": "gym"}, seed=1)
    try:
        best, steps = train_until(agent, 800.0, 50_000)
    finally:
        agent.close()
    assert best >= 800.0, f"InvertedPendulum-v5: best mean-of-20 return {best:.1f} within {steps} steps"


def _small(env="Pendulum-v1", seed=3, **kw):
    return one(env, {"rollout_steps": 128, "envs_per_actor": 2, "epochs": 2, "minibatch_size": 32, **kw}, seed)


def test_a_checkpoint_continues_identically_in_another_learner():
    a, b = _small(), _small(seed=99)
    try:
        a.train([0], 256)
        state = a.get_state(0)
        a.set_state(0, state)  # a state load restarts episodes (and the reward scaler's running returns): both
        b.set_state(0, state)
        assert torch.equal(a.net.flat, b.net.flat)
        ra, rb = a.train([0], 256)[0], b.train([0], 256)[0]  # the same streams: the same rollouts and updates
        assert torch.equal(a.net.flat, b.net.flat) and torch.equal(a.exp_avg_sq, b.exp_avg_sq)
        assert ra.metrics == rb.metrics and np.array_equal(a.obs_rms[0].mean, b.obs_rms[0].mean)
    finally:
        a.close()
        b.close()


def test_set_hparams_reaches_the_optimiser_on_the_next_update():
    a = _small()
    try:
        a.train([0], 128)
        a.set_hparams(0, {"lr": 1.234e-3, "clip": 0.3, "epochs": 1})
        res = a.train([0], 128)[0]
        assert res.metrics["lr"] == pytest.approx(1.234e-3)
        assert a.get_state(0)["opt"]["param_groups"][0]["lr"] == pytest.approx(1.234e-3)
        # and after a state copy the copied hparams are the ones the optimiser uses
        b = _small(lr=1e-5)
        b.set_state(0, a.get_state(0))
        assert b.get_state(0)["opt"]["param_groups"][0]["lr"] == pytest.approx(1.234e-3)
        b.set_hparams(0, {"lr": 7e-4})
        assert b.train([0], 128)[0].metrics["lr"] == pytest.approx(7e-4)
        b.close()
    finally:
        a.close()


def test_the_learning_rate_scales_the_step():
    """Adam's first step moves each weight by about lr: the lr set is the one the update uses."""
    a, b = _small(lr=1e-4), _small(lr=1e-3)
    try:
        w0 = a.net.flat.clone()
        assert torch.equal(w0, b.net.flat)
        a.set_hparams(0, {"epochs": 1, "minibatch_size": 256})  # one Adam step each
        b.set_hparams(0, {"epochs": 1, "minibatch_size": 256})
        a.train([0], 128)
        b.train([0], 128)
        ratio = float((b.net.flat - w0).abs().max() / (a.net.flat - w0).abs().max())
        assert ratio == pytest.approx(10.0, rel=1e-2)
    finally:
        a.close()
        b.close()


def test_fixed_and_unknown_hparams_are_refused_with_the_name():
    a = _small()
    try:
        with pytest.raises(ValueError, match="hidden"):
            a.set_hparams(0, {"hidden": (32,)})
        with pytest.raises(ValueError, match="learning_rate"):
            a.set_hparams(0, {"learning_rate": 1e-3})
    finally:
        a.close()
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        one("CartPole-v1", {"lrr": 1e-3}, 0)


@pytest.mark.parametrize("learner", ["ppo", "vmpo"])
def test_a_learner_never_moves_the_torch_rng_of_its_process(learner):
    """Building a learner, training it, or copying a state into it leaves the process-wide torch RNG where it
    was, and a member's weights depend on its seed only."""
    from rlpop.agents import batched_learner_class

    cls = batched_learner_class(learner)
    hp = {"rollout_steps": 64, "envs_per_actor": 2, "minibatch_size": 32}
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = cls("Corridor-v0", [hp], [5])
    torch.manual_seed(456)  # another global RNG position: the seed alone decides the weights
    b = cls("Corridor-v0", [hp], [5])
    try:
        assert torch.equal(a.net.flat, b.net.flat)
        torch.manual_seed(123)
        a.train([0], 64)
        b.set_state(0, a.get_state(0))
        assert torch.equal(torch.get_rng_state(), before)
        assert "torch_rng" not in a.get_state(0)
    finally:
        a.close()
        b.close()


def test_a_checkpoint_of_the_former_per_member_ppo_still_loads():
    """Runs checkpointed by the removed per-member PPO resume: their member states carry the minibatch stream
    only (no stream epoch, action noise or env stream)."""
    from rlpop import streams

    a, b = _small(), _small(seed=99)
    try:
        a.train([0], 128)
        old = a.get_state(0)
        old[streams.KEY] = {"minibatch": old[streams.KEY]["minibatch"]}
        b.set_state(0, old)
        assert torch.equal(a.net.flat, b.net.flat) and b.get_state(0)["updates"] == 1
        assert b.train([0], 128)[0].steps == 128
    finally:
        a.close()
        b.close()
