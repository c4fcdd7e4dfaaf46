"""The V-MPO learner: it learns, its state round-trips, its hparams take effect."""
from __future__ import annotations

import copy
import pickle
import time

import numpy as np
import pytest
import torch

from rlpop.agents.networks import ActorCritic
from rlpop.agents.vmpo import MUTABLE, POPART_BETA, VMPO, PopArt

SMALL = {"rollout_steps": 64, "envs_per_actor": 4, "minibatch_size": 32, "epochs": 1, "target_period": 3}
# The defaults are V-MPO's Gym settings (lr 1e-4, one pass per 312-step batch, target refreshed every 100
# updates: sized for 1e9+ steps). The learning tests use faster settings on their small tasks and keep the
# rest of the defaults (PopArt, raw rewards, the initial multipliers and KL bounds).
FAST = {"lr": 1e-3, "eps_eta": 0.02, "target_period": 10, "epochs": 2, "rollout_steps": 1024, "minibatch_size": 128}


def _learn_until(env_id: str, threshold: float, budget: int, seed: int = 0) -> tuple[int, float, float]:
    """Train with FAST in 10k-step chunks; return (steps, last-20 mean, seconds)
    at the first chunk where the mean of the last 20 episode returns reaches ``threshold``."""
    learner = VMPO(env_id, FAST, seed=seed)
    returns: list[float] = []
    steps, start, score = 0, time.perf_counter(), float("-inf")
    try:
        while steps < budget:
            res = learner.train(10_000)
            steps += res.steps
            returns += res.episode_returns
            score = float(np.mean(returns[-20:]))
            if len(returns) >= 20 and score >= threshold:
                break
    finally:
        learner.close()
    return steps, score, time.perf_counter() - start


def test_learns_cartpole():
    # seed 0 reaches 195 at 41k steps (12 s on a loaded 2-core box); budget 60k env steps
    # (benchmarks/vmpo_duals.py: seeds 0-2 reach it at 41k, 20k, 51k with the paper's multipliers)
    steps, score, secs = _learn_until("CartPole-v1", 195.0, budget=60_000)
    print(f"CartPole-v1: last-20 mean {score:.1f} after {steps} steps, {secs:.1f} s")
    assert score >= 195.0


def test_learns_inverted_pendulum():
    # seed 0 reaches 800 at 72k steps; budget 120k env steps
    # (benchmarks/vmpo_duals.py: seeds 0-2 reach it at 72k, 82k, 113k with the paper's multipliers)
    steps, score, secs = _learn_until("InvertedPendulum-v5", 800.0, budget=120_000)
    print(f"InvertedPendulum-v5: last-20 mean {score:.1f} after {steps} steps, {secs:.1f} s")
    assert score >= 800.0


def _rollout(learner: VMPO):
    learner._ensure_pool()
    return learner.pool.collect(learner.actor_weights(), learner._obs_norm(),
                                learner.hp["rollout_steps"] // learner.pool.num_envs)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "CartPole-v1"])
def test_state_round_trip_gives_identical_actions_and_next_update(env_id):
    a = VMPO(env_id, {**SMALL, "popart": True}, seed=1)
    a.train(5 * 64)  # 10 updates with target_period 3: target is one update stale
    a.set_hparams({"lr": 7e-4, "eps_eta": 0.05})
    state = pickle.loads(pickle.dumps(a.get_state()))
    assert not _same_tensors(state["net"], state["target"])
    assert set(state["multipliers"]) == ({"eta", "alpha"} if env_id == "CartPole-v1"
                                         else {"eta", "alpha_mu", "alpha_sigma"})
    assert state["multipliers"]["eta"] != pytest.approx(1.0)  # moved from its initial value

    b = VMPO(env_id, {**SMALL, "popart": True}, seed=99)
    b.set_state(state)
    assert b.multipliers() == a.multipliers()
    assert b.get_hparams()["eps_eta"] == 0.05 and b.opt.param_groups[0]["lr"] == 7e-4
    assert _same_tensors(b.actor_weights(), a.actor_weights())
    assert b.popart.state() == a.popart.state()

    # bit-identical actions from the acting (target) policy, built as the actors build it
    obs = torch.as_tensor(np.stack([a.observation_space.sample() for _ in range(16)]), dtype=torch.float32)
    pa, pb = a.policy_spec.build(), b.policy_spec.build()
    pa.load_state_dict(a.actor_weights())
    pb.load_state_dict(b.actor_weights())
    act_a, logp_a = pa.act(obs, torch.Generator().manual_seed(5))
    act_b, logp_b = pb.act(obs, torch.Generator().manual_seed(5))
    assert torch.equal(act_a, act_b) and torch.equal(logp_a, logp_b)

    # the same next update (same rollout in): identical weights, target, multipliers, metrics
    ro = _rollout(a)
    m_a = a.learn(copy.deepcopy(ro))
    m_b = b.learn(copy.deepcopy(ro))
    assert m_a == m_b
    assert _same_tensors(a.get_state()["net"], b.get_state()["net"])
    assert _same_tensors(a.get_state()["target"], b.get_state()["target"])
    assert a.multipliers() == b.multipliers()
    assert a.updates == b.updates == 12 and a.target_updates == b.target_updates == 4
    a.close()
    b.close()


def test_actors_act_with_target_refreshed_every_target_period():
    learner = VMPO("CartPole-v1", SMALL, seed=0)
    ro = _rollout(learner)
    learner.learn(ro)  # 2 updates < target_period 3
    assert learner.target_updates == 0
    net = {k: v.cpu() for k, v in learner.net.state_dict().items()}
    assert not _same_tensors(learner.actor_weights(), net)
    learner.learn(ro)  # updates 3, 4: refreshed after the 3rd
    assert learner.target_updates == 1 and learner.updates == 4
    learner.learn(ro)  # update 5, 6: refreshed after the 6th
    assert learner.target_updates == 2
    net = {k: v.cpu() for k, v in learner.net.state_dict().items()}
    assert _same_tensors(learner.actor_weights(), net)
    learner.close()


def _one_update_learner(**hp):
    return VMPO("InvertedPendulum-v5", {**SMALL, "minibatch_size": 64, **hp}, seed=3)


def test_set_hparams_eps_eta_changes_the_next_loss():
    a, b = _one_update_learner(), _one_update_learner()
    ro = _rollout(a)
    a.set_hparams({"eps_eta": 10.0})  # > log(32) >= KL(psi || uniform on the top 32 of 64)
    b.set_hparams({"eps_eta": 1e-6})
    m_a, m_b = a.learn(copy.deepcopy(ro)), b.learn(copy.deepcopy(ro))
    # one update each, same eta before it: L_eta differs by exactly eta * (1e-6 - 10)
    assert m_a["eta"] == m_b["eta"] == pytest.approx(1.0)
    assert m_b["temperature_loss"] - m_a["temperature_loss"] == pytest.approx(m_a["eta"] * (1e-6 - 10.0), rel=1e-5)
    # dL/deta = eps_eta - KL(psi || uniform): a loose bound lowers eta, a tight one raises it
    assert a.multipliers()["eta"] < 1.0 < b.multipliers()["eta"]


def test_set_hparams_lr_reaches_the_optimiser():
    learner = _one_update_learner()
    ro = _rollout(learner)
    learner.set_hparams({"lr": 1e-5})
    assert learner.get_hparams()["lr"] == 1e-5
    m = learner.learn(ro)
    assert m["lr"] == 1e-5 and learner.opt.param_groups[0]["lr"] == 1e-5


def test_set_hparams_rejects_unknown_and_fixed_names():
    learner = _one_update_learner()
    with pytest.raises(ValueError, match="unknown.*'eps_etaa'"):
        learner.set_hparams({"eps_etaa": 0.1})
    with pytest.raises(ValueError, match="target_period"):
        learner.set_hparams({"target_period": 7})
    with pytest.raises(ValueError, match="eps_eta must be > 0"):
        learner.set_hparams({"eps_eta": 0.0})
    assert learner.get_hparams()["eps_eta"] == 0.01
    assert MUTABLE >= {"lr", "eps_eta"}


def test_defaults_and_bad_constructor_input():
    learner = _one_update_learner()
    hp = learner.get_hparams()
    assert hp["eps_alpha_mu"] == 7.5e-3 and hp["eps_alpha_sigma"] == 1e-5
    # V-MPO's Gym settings (README, "V-MPO settings")
    d = VMPO("InvertedPendulum-v5", seed=0)
    hp = d.get_hparams()
    assert (hp["lr"], hp["eps_eta"], hp["gamma"], hp["target_period"], hp["epochs"]) == (1e-4, 0.01, 0.99, 100, 1)
    assert hp["popart"] is True and hp["norm_reward"] is False and hp["n_step"] is None
    assert hp["rollout_steps"] // (max(1, hp["num_actors"]) * hp["envs_per_actor"]) == 39  # 39-step unrolls
    assert hp["minibatch_size"] == hp["rollout_steps"]  # one gradient step per batch
    assert d.popart is not None and d.multipliers() == pytest.approx({"eta": 1.0, "alpha_mu": 1.0, "alpha_sigma": 1.0})
    # V-MPO Sec. 4.2.2 (PopArt's statistics rate) and 4.1 (multipliers in the network's optimiser); the std
    # stays state-independent (benchmarks/results/vmpo_duals.json: "state" learns less reliably here)
    assert hp["popart_beta"] == POPART_BETA == 1e-4 and d.popart.beta == 1e-4
    assert hp["duals"] == "paper" and hp["std"] == "param" and not d.net.state_std
    assert d.dual_opt.param_groups[0]["lr"] == d.opt.param_groups[0]["lr"] == 1e-4
    d.close()
    assert learner.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="target_period"):
        VMPO("CartPole-v1", {"target_period": 0})
    with pytest.raises(ValueError, match="unknown.*'epsilon'"):
        VMPO("CartPole-v1", {"epsilon": 0.1})
    with pytest.raises(ValueError, match="rollout_steps"):
        VMPO("CartPole-v1", {"rollout_steps": 10, "envs_per_actor": 4})
    with pytest.raises(ValueError, match="duals"):
        VMPO("CartPole-v1", {"duals": "softplus"})
    with pytest.raises(ValueError, match="std"):
        VMPO("CartPole-v1", {"std": "learned"})


def test_popart_scale_stays_within_the_papers_bounds():
    pop = PopArt()
    assert pop.beta == 1e-4
    pop.mean, pop.sq_mean = 3.0, 9.0  # variance 0
    assert pop.std == 1e-2
    pop.mean, pop.sq_mean = 0.0, 1e14  # std 1e7
    assert pop.std == 1e6
    pop.mean, pop.sq_mean = 1.0, 5.0
    assert pop.std == pytest.approx(2.0)


def test_paper_duals_step_with_the_networks_optimiser_and_are_projected():
    # V-MPO Sec. 4.1: eta and the alphas are in the total loss, stepped by the network's Adam at its lr
    learner = _one_update_learner()
    ro = _rollout(learner)
    learner.set_hparams({"lr": 1e-5})
    learner.learn(copy.deepcopy(ro))  # one update: Adam's first step moves each parameter by ~lr
    assert learner.dual_opt.param_groups[0]["lr"] == learner.opt.param_groups[0]["lr"] == 1e-5
    for name, v in learner.multipliers().items():
        assert abs(v - 1.0) == pytest.approx(1e-5, rel=1e-2), name  # not dual_lr's 1e-2
    steps = {int(s["step"]) for o in (learner.opt, learner.dual_opt) for s in o.state.values()}
    assert steps == {1}
    learner.close()
    # a step that would take eta below 1e-8 leaves it at 1e-8: eps_eta 10 > log(32) >= KL(psi || uniform),
    # so descent lowers eta, and Adam's first step (~lr = 1e-2) overshoots 1e-3
    low = _one_update_learner(lr=1e-2, eps_eta=10.0)
    with torch.no_grad():
        low.duals["eta"].fill_(1e-3)
    m = low.learn(copy.deepcopy(ro))
    assert m["eta"] == pytest.approx(1e-3, rel=1e-6)
    assert low.multipliers()["eta"] == pytest.approx(1e-8, rel=1e-6)  # 1e-8 in float32
    low.close()


def test_softplus_adam_duals_keep_their_own_step_size():
    learner = _one_update_learner(duals="softplus_adam", lr=1e-5)
    ro = _rollout(learner)
    learner.learn(ro)
    assert learner.dual_opt.param_groups[0]["lr"] == 1e-2 and learner.opt.param_groups[0]["lr"] == 1e-5
    raw = {k: float(p.detach()) for k, p in learner.duals.items()}
    for name, v in raw.items():  # the raw (pre-softplus) parameters took a dual_lr-sized first step
        assert abs(v - np.log(np.expm1(1.0))) == pytest.approx(1e-2, rel=1e-2), name
    paper = _one_update_learner()
    with pytest.raises(ValueError, match="duals='softplus_adam'"):
        paper.set_state(learner.get_state())  # raw softplus parameters are not multipliers
    learner.close()
    paper.close()


def test_state_dependent_std_depends_on_the_state():
    learner = _one_update_learner(std="state")
    assert not hasattr(learner.net, "log_std") and learner.net.actor[-1].out_features == 2
    obs = torch.as_tensor(np.stack([learner.observation_space.sample() for _ in range(2)]), dtype=torch.float32)
    _, log_std = learner.net.policy_params(obs)
    std = log_std.detach().exp()
    assert std.shape == (2, 1) and float((std[0] - std[1]).abs()) > 1e-5  # two observations, two stds
    assert std == pytest.approx(torch.ones(2, 1), abs=0.05)  # starts near exp(init_log_std)
    # the actors build the same head from the policy spec
    actor = learner.policy_spec.build()
    actor.load_state_dict(learner.actor_weights())
    assert torch.equal(actor.policy_params(obs)[1], learner.target.policy_params(obs)[1])
    # PPO's network (the default std="param") keeps one state-independent log-std
    ppo_net = ActorCritic(learner.observation_space, learner.action_space)
    _, ppo_log_std = ppo_net.policy_params(obs)
    assert torch.equal(ppo_log_std[0], ppo_log_std[1]) and ppo_net.log_std.shape == (1,)
    learner.close()


def test_popart_preserves_unnormalised_outputs():
    head = torch.nn.Linear(3, 1).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    pop = PopArt(beta=0.5)
    before = head(x) * pop.std + pop.mean
    pop.update(torch.tensor([10.0, 30.0], dtype=torch.float64), head)
    after = head(x) * pop.std + pop.mean
    assert pop.mean == pytest.approx(10.0)  # 0.5 * 0 + 0.5 * 20
    assert pop.std == pytest.approx(np.sqrt(0.5 + 0.5 * 500 - 100))
    assert torch.allclose(before, after, rtol=1e-12, atol=1e-12)


def test_trains_with_actor_processes():
    learner = VMPO("CartPole-v1", {**SMALL, "num_actors": 1, "envs_per_actor": 4}, seed=0)
    try:
        res = learner.train(256)
    finally:
        learner.close()
    assert res.steps == 256 and learner.updates == 8
    assert len(res.episode_returns) > 0 and all(r >= 1 for r in res.episode_returns)
    assert all(np.isfinite(v) for k, v in res.metrics.items() if k != "explained_variance")


def test_humanoid_experiment_file_validates():
    from pathlib import Path

    from rlpop.run import load_experiment

    exp = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "humanoid_vmpo.py")
    assert exp.agent.learner == "vmpo" and exp.env == "Humanoid-v5"
    assert exp.agent.hparams["popart"] is True and exp.agent.hparams["target_period"] == 100
