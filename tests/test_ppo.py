"""PPO: it learns (discrete and continuous), its state round-trips, its hparams reach the optimiser."""
import numpy as np
import pytest
import torch

from rlpop.agents.ppo import PPO


def train_until(agent: PPO, target: float, budget: int, window: int = 20) -> tuple[float, int]:
    """Train until the mean return of the last ``window`` episodes reaches ``target`` or the budget is spent."""
    returns, steps, best = [], 0, -np.inf
    while steps < budget:
        res = agent.train(agent.hp["rollout_steps"])
        steps += res.steps
        returns += res.episode_returns
        if len(returns) >= window:
            best = max(best, float(np.mean(returns[-window:])))
            if best >= target:
                break
    return best, steps


def test_learns_corridor():
    agent = PPO("Corridor-v0", {"rollout_steps": 512, "envs_per_actor": 4}, seed=0)
    try:
        best, steps = train_until(agent, 0.9, 20_000)
    finally:
        agent.close()
    assert best >= 0.9, f"Corridor: best mean return {best:.3f} after {steps} steps"


def test_learns_cartpole():
    hp = dict(rollout_steps=512, envs_per_actor=4, epochs=4, minibatch_size=128, lr=2.5e-4, ent_coef=0.01,
              norm_obs=False, norm_reward=False)
    agent = PPO("CartPole-v1", hp, seed=1)
    try:
        best, steps = train_until(agent, 195.0, 60_000)
    finally:
        agent.close()
    assert best >= 195.0, f"CartPole-v1: best mean-of-20 return {best:.1f} within {steps} steps"


def test_learns_inverted_pendulum_continuous():
    agent = PPO("InvertedPendulum-v5", {"rollout_steps": 1024, "envs_per_actor": 4}, seed=1)
    try:
        best, steps = train_until(agent, 800.0, 50_000)
    finally:
        agent.close()
    assert best >= 800.0, f"InvertedPendulum-v5: best mean-of-20 return {best:.1f} within {steps} steps"


def _small(env="Pendulum-v1", **kw):
    return PPO(env, {"rollout_steps": 128, "envs_per_actor": 2, "epochs": 2, "minibatch_size": 32, **kw}, seed=3)


def test_state_round_trip_gives_identical_actions_and_update():
    a = _small()
    b = _small()
    try:
        a.train(256)
        b.set_state(a.get_state())
        a.set_state(a.get_state())  # a state load restarts episodes (and the reward scaler's running returns): both
        obs = torch.randn(16, 3)
        ga, gb = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.equal(a.net.act(obs, ga)[0], b.net.act(obs, gb)[0])
        # the same next update from the same data
        ro = a._ensure_pool().collect(a.actor_weights(), a._obs_norm(), 64)
        a._update(ro)
        b._update(ro)
        for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
            assert torch.equal(va, vb), k
        assert np.array_equal(a.obs_rms.mean, b.obs_rms.mean)
    finally:
        a.close()
        b.close()


def test_set_hparams_reaches_the_optimiser_on_the_next_update():
    a = _small()
    try:
        a.train(128)
        a.set_hparams({"lr": 1.234e-3, "clip": 0.3, "epochs": 1})
        res = a.train(128)
        assert a.opt.param_groups[0]["lr"] == pytest.approx(1.234e-3)
        assert res.metrics["lr"] == pytest.approx(1.234e-3)
        # and after a state copy the copied hparams are the ones the optimiser uses
        b = _small(lr=1e-5)
        b.set_state(a.get_state())
        assert b.opt.param_groups[0]["lr"] == pytest.approx(1.234e-3)
        b.set_hparams({"lr": 7e-4})
        b.train(128)
        assert b.opt.param_groups[0]["lr"] == pytest.approx(7e-4)
        b.close()
    finally:
        a.close()


def test_fixed_and_unknown_hparams_are_refused_with_the_name():
    a = _small()
    try:
        with pytest.raises(ValueError, match="hidden"):
            a.set_hparams({"hidden": (32,)})
        with pytest.raises(ValueError, match="learning_rate"):
            a.set_hparams({"learning_rate": 1e-3})
    finally:
        a.close()
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        PPO("CartPole-v1", {"lrr": 1e-3})


@pytest.mark.parametrize("learner", ["ppo", "vmpo"])
def test_a_member_never_moves_the_torch_rng_other_members_share(learner):
    """Members of the inline backend share one process: building one, training it, or copying another's state
    into it leaves the process-wide torch RNG where it was, and a member's weights depend on its seed only."""
    from rlpop.agents import make_learner

    hp = {"rollout_steps": 64, "envs_per_actor": 2, "minibatch_size": 32}
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = make_learner(learner, "Corridor-v0", hp, seed=5)
    torch.manual_seed(456)  # another global RNG position: the seed alone decides the weights
    b = make_learner(learner, "Corridor-v0", hp, seed=5)
    try:
        for k, v in a.get_state()["net"].items():
            assert torch.equal(v, b.get_state()["net"][k]), k
        torch.manual_seed(123)
        a.train(64)
        b.set_state(a.get_state())
        assert torch.equal(torch.get_rng_state(), before)
        assert "torch_rng" not in a.get_state()
    finally:
        a.close()
        b.close()
