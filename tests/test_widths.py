"""Layer width as a hyperparameter (rlpop.agents.widths): a member narrower than ``hidden`` is exactly the
narrower ActorCritic -- at init, through PPO updates, in export -- growing is a morphism, shrinking says the
function changed, copies carry widths, and a run searches width like any other hyperparameter."""
import copy
import json
import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlpop import streams
from rlpop.agents import widths as W
from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.batched_vmpo import BatchedVMPO
from rlpop.agents.networks import ActorCritic
from rlpop.policy import net_from_state

from conftest import DATA, run_cli
from test_batched_ppo import _max_diff, reference_update

BASE = {"rollout_steps": 128, "envs_per_actor": 2, "env_backend": "gym", "hidden": (32, 24), "epochs": 2,
        "minibatch_size": 32}


def _narrow_state(state: dict) -> dict:
    """A member's learner state as the narrower ActorCritic's (weights and Adam moments cut to its widths)."""
    hp = state["hparams"]
    ws = W.widths(hp)
    out = copy.deepcopy(state)
    out["net"] = W.narrow_state_dict(state["net"], hp["hidden"], ws)
    names = list(state["net"])
    for i, s in out["opt"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            s[key] = W.narrow_state_dict({names[i]: s[key]}, hp["hidden"], ws)[names[i]]
    if "target" in state:  # V-MPO's target network
        out["target"] = W.narrow_state_dict(state["target"], hp["hidden"], ws)
    out["hparams"] = {**hp, "hidden": ws}
    return out


def _off_units_zero(learner, k: int) -> bool:
    """Every parameter and Adam moment of member k's off units is exactly zero."""
    mask = W.param_mask(learner.net, [W.widths(learner.hps[k])])[0] == 0
    return all(bool((t[k][mask] == 0).all()) for t in (*learner.weight_stacks(), *learner.moment_stacks()))


def _outputs(learner, k: int, obs: np.ndarray):
    """Member k's policy mean, log-probability of fixed actions, and value on ``obs`` (its acting network)."""
    p = learner.net.views(learner.acting_flat()[k:k + 1])
    x = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
    mean, log_std = learner.net.policy_params(x, p)
    actions = torch.zeros_like(mean) + 0.3
    logp, _ = learner.net.log_prob_entropy(x, actions, p)
    return mean[0], logp[0], learner.net.value(x, p)[0]


# ---------------------------------------------------------------- pure functions
def test_narrow_and_pad_are_inverse_and_keep_the_function():
    torch.manual_seed(0)
    obs_space, act_space = spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,))
    small = ActorCritic(obs_space, act_space, hidden=(7, 3))
    big = ActorCritic(obs_space, act_space, hidden=(16, 8))
    padded = W.pad_state_dict(small.state_dict(), (16, 8), (7, 3))
    big.load_state_dict(padded)
    x = torch.randn(10, 5)
    # equal up to the rounding of a longer sum (other GEMM shapes)
    assert torch.allclose(big.actor(x), small.actor(x), atol=1e-6)
    assert torch.allclose(big.value(x), small.value(x), atol=1e-6)
    back = W.narrow_state_dict(padded, (16, 8), (7, 3))
    assert _max_diff(back, small.state_dict()) == 0.0


def test_width_notes_and_rules():
    assert W.width_notes({"width_0": 64}, {"width_0": 48}) == [
        "width_0 64 -> 48: units 48..63 dropped, the network's function changed"]
    assert W.width_notes({"width_0": 48}, {"width_0": 64}) == []  # growing is a morphism
    rules = W.rules({"hidden": (64, 32)})
    assert rules["width_1"].problem(33) and not rules["width_1"].problem(32) and not rules["width_0"].problem(None)
    assert rules["width_2"].problem(8) and "2 layer(s)" in rules["width_2"].describe()
    assert W.widths({"hidden": (64, 32), "width_0": 10, "width_1": None}) == (10, 32)


# ---------------------------------------------------------------- the learner
def test_a_narrow_member_starts_and_updates_as_the_narrower_network():
    """Member 0 (widths 20, 9 of 32, 24) beside a full-width member: its initial weights are those of
    ActorCritic(hidden=(20, 9)) under its init seed; one update equals the reference PPO update of that
    narrower network with torch.optim.Adam; its off units keep exact zeros; and it learns the same whether or
    not another member shares its batch."""
    hps = [{**BASE, "width_0": 20, "width_1": 9}, {**BASE, "lr": 1e-3}]
    b = BatchedPPO("Pendulum-v1", hps, [10, 11])
    alone = BatchedPPO("Pendulum-v1", hps[:1], [10])
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(streams.init_seed(10))
            native = ActorCritic(b.observation_space, b.action_space, hidden=(20, 9))
        assert _max_diff(_narrow_state(b.get_state(0))["net"], native.state_dict()) == 0.0
        assert _off_units_zero(b, 0)
        b.train([0, 1], 128)
        alone.train([0], 128)
        ro = b.collect([0, 1], 64)
        before = _narrow_state(b.get_state(0))
        b.learn([0, 1], ro)
        net, ref = reference_update(b, 0, before, ro, 0)
        after = _narrow_state(b.get_state(0))
        assert _max_diff(net.state_dict(), after["net"]) < 1e-5
        for j, s in ref["opt"]["state"].items():
            assert torch.allclose(s["exp_avg_sq"], after["opt"]["state"][j]["exp_avg_sq"], atol=1e-8, rtol=1e-4)
        assert _off_units_zero(b, 0)
        alone.learn([0], alone.collect([0], 64))
        assert _max_diff(b.net.member_state_dict(0), alone.net.member_state_dict(0)) == 0.0
    finally:
        b.close()
        alone.close()


def test_a_narrow_vmpo_member_updates_as_the_narrower_network():
    """V-MPO (online and target networks, gradients clipped per network, PopArt): a member at widths (10, 7) of
    (32, 24) updates as the reference V-MPO update of ActorCritic(hidden=(10, 7))."""
    from test_batched_vmpo import SMALL, Reference

    hps = [{**SMALL, "hidden": (32, 24), "width_0": 10, "width_1": 7, "popart": True, "max_grad_norm": 0.1},
           {**SMALL, "hidden": (32, 24)}]
    b = BatchedVMPO("InvertedPendulum-v5", hps, [5, 6])
    try:
        b.train([0, 1], 4 * 64)
        ro = b.collect([0, 1], 16)
        ref = Reference(b, _narrow_state(copy.deepcopy(b.get_state(0))))
        b.learn([0, 1], ro)
        ref.update(ro, 0)
        after = _narrow_state(b.get_state(0))
        assert _max_diff(ref.net.state_dict(), after["net"]) < 2e-5
        assert _max_diff(ref.target.state_dict(), after["target"]) < 2e-5
        assert _off_units_zero(b, 0)
    finally:
        b.close()


@pytest.mark.parametrize("cls", [BatchedPPO, BatchedVMPO])
def test_growing_is_a_morphism_and_shrinking_drops_units(cls):
    hps = [{**BASE, "width_0": 12}, dict(BASE)]
    if cls is BatchedVMPO:
        hps = [{k: v for k, v in h.items() if k != "minibatch_size"} for h in hps]
    b = cls("Pendulum-v1", hps, [3, 4])
    try:
        b.train([0, 1], 256)
        obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
        mean0, logp0, v0 = _outputs(b, 0, obs)
        online0 = b.net.value(torch.as_tensor(obs).unsqueeze(0), b.net.views(b.net.flat[:1]))[0]
        b.set_hparams(0, {"width_0": 30})
        mean1, logp1, v1 = _outputs(b, 0, obs)
        online1 = b.net.value(torch.as_tensor(obs).unsqueeze(0), b.net.views(b.net.flat[:1]))[0]
        for a, c in ((mean0, mean1), (logp0, logp1), (v0, v1), (online0, online1)):
            assert float((a - c).abs().max()) <= 1e-6
        units = W.unit_views(b.net, b.net.flat[:1], 0, slice(12, 30))
        assert all(bool((t != 0).any()) for t in units["in"]), "the new units have fresh incoming weights"
        assert all(bool((t == 0).all()) for t in units["out"] + units["bias"])
        assert _off_units_zero(b, 0)
        b.train([0, 1], 128)  # the grown units learn
        assert all(bool((t != 0).any()) for t in W.unit_views(b.net, b.net.flat[:1], 0, slice(12, 30))["out"])
        b.set_hparams(0, {"width_0": 5})
        assert float((_outputs(b, 0, obs)[0] - _outputs(b, 1, obs)[0]).abs().max()) > 0
        assert _off_units_zero(b, 0)
        state = b.get_state(0)
        exported = net_from_state(state, b.observation_space, b.action_space)
        assert [m.out_features for m in exported.actor if hasattr(m, "out_features")][:2] == [5, 24]
        mean, _, value = _outputs(b, 0, obs)
        x = torch.as_tensor(obs)
        if cls is BatchedPPO:  # V-MPO acts with its target network; the export is the online one
            assert torch.allclose(exported.actor(x), mean, atol=1e-6)
            assert torch.allclose(exported.value(x).squeeze(-1), value, atol=1e-6)
    finally:
        b.close()


def test_a_copy_carries_weights_and_widths_and_a_wrong_width_is_refused():
    b = BatchedPPO("Pendulum-v1", [{**BASE, "width_1": 6}, dict(BASE)], [0, 1])
    try:
        b.train([0, 1], 128)
        b.copy_member(0, 1)
        assert b.get_hparams(1)["width_1"] == 6 and _off_units_zero(b, 1)
        assert _max_diff(b.net.member_state_dict(0), b.net.member_state_dict(1)) == 0.0
        # a checkpoint (streams kept) restores a narrow member into a learner built at full width
        ckpt = b.get_state(1)
        other = BatchedPPO("Pendulum-v1", [dict(BASE)], [7])
        try:
            other.set_state(0, ckpt)
            assert other.get_hparams(0)["width_1"] == 6 and _off_units_zero(other, 0)
            assert _max_diff(other.net.member_state_dict(0), b.net.member_state_dict(1)) == 0.0
            other.train([0], 128)
            assert _off_units_zero(other, 0)
        finally:
            other.close()
        with pytest.raises(ValueError, match="width_1=25"):
            b.set_hparams(1, {"width_1": 25})
        with pytest.raises(ValueError, match="width_2"):
            b.set_hparams(1, {"width_2": 4})
    finally:
        b.close()


# ---------------------------------------------------------------- a run
def test_pbt_searches_width_and_logs_shrinks(tmp_path):
    exp = tmp_path / "width_pbt.py"
    exp.write_text((DATA / "tiny_pbt.py").read_text()
                   .replace('"epochs": 2}', '"epochs": 2, "hidden": (32, 32)}')
                   .replace('"clip": Uniform(0.1, 0.3, factors=(0.8, 1.25))',
                            '"width_0": IntUniform(16, 32, factors=(0.5,), bounds=(2, 32))')
                   .replace("import LogUniform, Uniform", "import IntUniform, LogUniform"))
    res = run_cli(str(exp), "--backend", "inline", "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = list((tmp_path / "runs").iterdir())
    recs = [json.loads(line) for line in (run / "decisions.jsonl").read_text().splitlines()]
    explores = [r for r in recs if r["kind"] == "explore" and "width_0" in r["changes"]]
    assert explores
    for r in explores:  # "32 --(x0.5)--> 16"
        old, new = (int(v) for v in re.fullmatch(r"(\d+) --\(.*\)--> (\d+)", r["changes"]["width_0"]).groups())
        assert (new < old) == bool(r.get("function_changed")), r
    assert any(r.get("function_changed") for r in explores), "explore only halves width_0 here"
    import rlpop

    policy = rlpop.load_run(run).policy()
    first = next(m for m in policy.module.modules() if isinstance(m, torch.nn.Linear))
    assert first.out_features == policy.meta["hparams"]["width_0"] < 32


def test_hidden_in_a_space_points_to_width():
    from rlpop.experiment import PBT, Agent, Experiment
    from rlpop.hparams import Choice, IntUniform

    base = dict(name="w", env="Corridor-v0", strategy=PBT(population=2, ready_steps=256), total_steps=512,
                eval_steps=256)
    with pytest.raises(ValueError, match="width_0"):
        Experiment(agent=Agent("ppo"), space={"hidden": Choice([(32,), (64,)])}, **base).validate()
    with pytest.raises(ValueError, match="width_0"):
        Experiment(agent=Agent("ppo", hparams={"hidden": (32, 32)}),
                   space={"width_0": IntUniform(8, 64)}, **base).validate()
    Experiment(agent=Agent("ppo", hparams={"hidden": (32, 32)}), space={"width_0": IntUniform(8, 32)},
               **base).validate()


def test_the_width_study_experiments_are_valid(monkeypatch):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    from width_space import CONFIGS, width_experiment

    for config in CONFIGS:
        exp = width_experiment(config)
        exp.validate()
        assert ("width_0" in exp.space) == (config == "searched")
