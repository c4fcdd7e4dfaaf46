"""``rllib:PPO`` members: RLlib Algorithms (new API stack) behind rlpop's learner protocol.

The headline test is Ray issue #62173 (Tune's PBT with RLlib silently keeps the old lr / clip_param / lambda
after a restore): after an exploit (set_state) and an explore (set_hparams), the Learner's next update must use
the new values -- read from inside the loss, the GAE connector and the optimiser, not from our own bookkeeping.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform, Uniform

SMALL = {"train_batch_size": 256, "minibatch_size": 128, "num_epochs": 2, "num_envs": 4, "hidden": (16, 16),
         "normalize_obs": True}
MID = "default_policy"


@pytest.fixture(scope="module")
def pair():
    """Members A and B (different lr, seeds); B has made more updates than A (its weights' sequence number is
    ahead, which RLlib would take as a reason not to load A's weights)."""
    import ray

    from rlpop.agents import make_learner

    ray_before = ray.is_initialized()
    a = make_learner("rllib:PPO", "CartPole-v1", {**SMALL, "lr": 1e-3}, seed=0)
    b = make_learner("rllib:PPO", "CartPole-v1", {**SMALL, "lr": 3e-4, "clip_param": 0.3, "lambda_": 0.9}, seed=1)
    a.train(256)
    b.train(256)
    b.train(256)
    yield a, b, ray_before
    a.close()
    b.close()


def _optimizer_tensors(learner):
    out = []
    for name, opt in sorted(learner.learner._named_optimizers.items()):
        for st in opt.state_dict()["state"].values():
            out += [np.asarray(v.detach().cpu()) for v in st.values() if hasattr(v, "detach")]
    return out


def test_state_copy_gives_identical_policies_optimiser_and_obs_filter(pair):
    a, b, _ = pair
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    assert not np.allclose(a.policy_logits(obs), b.policy_logits(obs))
    b.set_state(a.get_state())
    for where in ("learner", "env_runner"):  # the Learner's RLModule and the one the EnvRunner acts with
        np.testing.assert_array_equal(a.policy_logits(obs, where), b.policy_logits(obs, where))
        np.testing.assert_array_equal(a.act(obs, where), b.act(obs, where))
    for x, y in zip(_optimizer_tensors(a), _optimizer_tensors(b), strict=True):  # Adam moments
        np.testing.assert_array_equal(x, y)
    # the MeanStdFilter's running statistics (EnvRunner connector state)
    sa = a.env_runner._env_to_module.get_state()
    sb = b.env_runner._env_to_module.get_state()
    assert str(sa) == str(sb) and "MeanStdFilter" in str(sa)
    assert b.get_hparams()["lr"] == 1e-3 and b.used_hparams()["optimizer_lr"] == pytest.approx(1e-3)
    assert b.used_hparams()["clip_param"] == 0.2 and b.used_hparams()["gae_lambda"] == 0.95


def test_explored_hparams_reach_the_learner_after_a_restore_ray_issue_62173(pair, monkeypatch):
    """B restores A's state (exploit), then gets perturbed hparams (explore): its next update must use them --
    in the optimiser, the loss and the GAE connector -- and not A's (in the optimiser state it loaded) nor B's
    original ones (in the frozen AlgorithmConfig RLlib built B from)."""
    import ray.rllib.connectors.learner.general_advantage_estimation as gae_mod

    a, b, _ = pair
    new = {"lr": 7.7e-4, "clip_param": 0.123, "lambda_": 0.811, "gamma": 0.97, "entropy_coeff": 0.0125,
           "vf_loss_coeff": 0.33}
    b.set_state(a.get_state())
    b.set_hparams(new)
    learner = b.learner
    seen = {"lr": set(), "clip_param": set(), "vf_loss_coeff": set(), "entropy_coeff": set(), "gamma": set(),
            "lambda_": set()}
    loss_fn = learner.compute_loss_for_module

    def spy_loss(*, module_id, config, batch, fwd_out):
        seen["clip_param"].add(config.clip_param)
        seen["vf_loss_coeff"].add(config.vf_loss_coeff)
        seen["entropy_coeff"].add(float(learner.entropy_coeff_schedulers_per_module[module_id].get_current_value()))
        seen["lr"].update(g["lr"] for o in learner._named_optimizers.values() for g in o.param_groups)
        return loss_fn(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)

    value_targets = gae_mod.compute_value_targets

    def spy_gae(*args, **kw):
        seen["gamma"].add(kw["gamma"])
        seen["lambda_"].add(kw["lambda_"])
        return value_targets(*args, **kw)

    monkeypatch.setattr(learner, "compute_loss_for_module", spy_loss)
    monkeypatch.setattr(gae_mod, "compute_value_targets", spy_gae)
    res = b.train(256)
    assert len(res.updates) == 1
    for k in ("lr", "clip_param", "vf_loss_coeff", "entropy_coeff", "gamma", "lambda_"):
        assert len(seen[k]) == 1 and seen[k].pop() == pytest.approx(new[k]), (k, seen[k])
    # after the update RLlib re-applies its lr scheduler to the optimiser: it must hold the new lr, too
    for opt in learner._named_optimizers.values():
        assert [g["lr"] for g in opt.param_groups] == [pytest.approx(7.7e-4)]
    assert res.metrics["lr"] == pytest.approx(7.7e-4)
    used = b.used_hparams()
    assert used["clip_param"] == 0.123 and used["gae_lambda"] == 0.811 and used["gae_gamma"] == 0.97
    # and the next exploit carries them: A's copy of B's state brings B's hparams into A's learner
    a.set_state(b.get_state())
    assert a.used_hparams()["optimizer_lr"] == pytest.approx(7.7e-4) and a.used_hparams()["clip_param"] == 0.123


def test_train_reports_steps_individual_returns_and_metrics(pair):
    a, _, _ = pair
    res = a.train(600)  # whole iterations of 256 env steps until >= 600
    assert res.steps >= 600 and len(res.updates) == 3
    assert sum(u["steps"] for u in res.updates) == res.steps
    assert res.episode_returns and all(r >= 8 for r in res.episode_returns)  # CartPole: every episode >= 8 steps
    assert len(set(res.episode_returns)) > 1  # individual returns, not one mean
    assert {"policy_loss", "vf_loss", "entropy", "lr"} <= set(res.metrics)


def test_set_hparams_refuses_unknown_and_fixed_names(pair):
    a, _, _ = pair
    with pytest.raises(ValueError, match="bogus"):
        a.set_hparams({"bogus": 1})
    with pytest.raises(ValueError, match="num_epochs"):
        a.set_hparams({"num_epochs": 3})


def test_pbt_population_of_rllib_members_learns_cartpole_inline(pair, tmp_path):
    """A PBT run of two rllib:PPO members, inline (in this process; ``pair`` keeps the Ray session warm)."""
    from rlpop.run import execute
    from rlpop.store import RunDir

    exp = Experiment(
        name="rllib_pbt", env="CartPole-v1",
        agent=Agent("rllib:PPO", hparams={"train_batch_size": 1000, "minibatch_size": 250, "num_epochs": 6,
                                          "num_envs": 8, "hidden": (32, 32), "vf_loss_coeff": 0.01}),
        space={"lr": LogUniform(7e-4, 2e-3, factors=(0.8, 1.25)), "clip_param": Uniform(0.15, 0.3)},
        strategy=PBT(population=2, ready_steps=2000), total_steps=5000, eval_steps=1000, backend="inline")
    run = RunDir.create(tmp_path, "rllib")
    assert execute(exp, run, "inline", quiet=True) == 0
    curves = pd.read_csv(run.path / "curves.csv")
    assert sorted(curves.worker.unique()) == [0, 1]
    assert (curves.groupby("worker").step.max() >= 5000).all()
    print(curves[["worker", "round", "step", "q"]].to_string())
    first = curves[curves["round"] == 1].q.max()
    last = curves[curves["round"] == curves["round"].max()].q.max()
    # a uniformly random CartPole policy averages ~22 per episode; a Q (mean of a round's episodes) above 60
    # is out of its reach
    assert last > 60 and last > first, curves[["worker", "round", "step", "q"]].to_string()
    # rlpop export: the best kept member as an RLlib checkpoint (the learner's export hook), and its RLModule loads
    import json

    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    from rlpop.export import export

    out, side = export(run.path, out=tmp_path / "agent")
    meta = json.loads(side.read_text())
    assert meta["format"] == "rllib" and meta["files"] == ["agent"] and (out / "rllib_checkpoint.json").is_file()
    module = RLModule.from_checkpoint(str((out / "learner_group" / "learner" / "rl_module" / MID).resolve()))
    assert module.forward_inference({"obs": torch.zeros(3, 4)})["action_dist_inputs"].shape == (3, 2)


def test_inline_close_stops_the_ray_session_it_started(pair):
    import ray

    a, b, ray_before = pair
    assert ray.is_initialized()
    a.close()
    b.close()
    a.close()  # idempotent
    # the members started a local session only if none was running; the last close ends that one, and only it
    assert ray.is_initialized() == ray_before
    if not ray_before:  # and no Ray process of ours is left behind
        import psutil

        deadline = time.time() + 10
        while True:
            left = [p.name() for p in psutil.Process().children(recursive=True)
                    if any(k in p.name() for k in ("raylet", "gcs_server", "ray::", "default_worker"))]
            if not left or time.time() > deadline:
                break
            time.sleep(0.2)
        assert not left, left


def test_spec_errors_name_the_unknown_algorithm_and_hparam():
    with pytest.raises(ValueError, match=r"'NoSuchAlgo'.*rllib:PPO"):
        Experiment(name="x", env="CartPole-v1", agent=Agent("rllib:NoSuchAlgo"), space={},
                   strategy=PBT(population=2, ready_steps=1000), total_steps=2000, eval_steps=1000)
    with pytest.raises(ValueError, match="bogus"):
        Experiment(name="x", env="CartPole-v1", agent=Agent("rllib:PPO", hparams={"bogus": 1}), space={},
                   strategy=PBT(population=2, ready_steps=1000), total_steps=2000, eval_steps=1000)
    with pytest.raises(ValueError, match="nope"):
        Experiment(name="x", env="CartPole-v1", agent=Agent("rllib:PPO"), space={"nope": LogUniform(1e-4, 1e-3)},
                   strategy=PBT(population=2, ready_steps=1000), total_steps=2000, eval_steps=1000)
    with pytest.raises(ValueError, match="num_epochs"):  # fixed for a member's lifetime: not searchable
        Experiment(name="x", env="CartPole-v1", agent=Agent("rllib:PPO"), space={"num_epochs": Uniform(2, 8)},
                   strategy=PBT(population=2, ready_steps=1000), total_steps=2000, eval_steps=1000)


def test_import_stays_light():
    code = "import sys, rlpop, rlpop.agents.rllib; assert 'ray.rllib' not in sys.modules, 'ray.rllib imported'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.skipif(os.environ.get("RLPOP_TEST_RLLIB_RAY") != "1",
                    reason="~60 s on a loaded 2-core machine (two Ray actors each import torch + RLlib); "
                           "RLPOP_TEST_RLLIB_RAY=1 runs it")
def test_pbt_with_rllib_members_on_the_ray_backend(ray_cluster, tmp_path):
    """Each member's Algorithm is built inside a Ray actor (nested: env runner and learner local to it)."""
    from rlpop.run import execute
    from rlpop.store import RunDir

    exp = Experiment(
        name="rllib_ray", env="CartPole-v1",
        agent=Agent("rllib:PPO", hparams={**SMALL, "train_batch_size": 500}),
        space={"lr": LogUniform(3e-4, 1e-3)}, strategy=PBT(population=2, ready_steps=500),
        total_steps=1000, eval_steps=500, backend="ray")
    run = RunDir.create(tmp_path, "rllib_ray")
    assert execute(exp, run, "ray", quiet=True) == 0
    curves = pd.read_csv(run.path / "curves.csv")
    assert sorted(curves.worker.unique()) == [0, 1] and (curves.groupby("worker").step.max() >= 1000).all()
