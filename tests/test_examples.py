"""The plug-in examples: a learner of one's own (experiments/cleanrl_learner.py) under PBT and FIRE on both
backends, its state copy and hparams, that it learns; FIRE over an env registered in the experiment file
(experiments/custom_env_fire.py). See docs/learners.md."""
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT, run_cli

EXP = ROOT / "experiments"
sys.path.insert(0, str(EXP))  # what rlpop.run does for modules beside an experiment file
from cleanrl_learner import CleanPPO  # noqa: E402

SMALL = {"num_envs": 2, "num_steps": 64}  # 128 env steps per update
SHRINK_PBT = ["--set", "total_steps=512", "--set", "eval_steps=128", "--set", "strategy.ready_steps=256",
              "--set", "agent.hparams.num_envs=2", "--set", "agent.hparams.num_steps=64"]
FIRE_SMALL = ["--set", "total_steps=1024", "--set", "eval_steps=128", "--set", "strategy.ready_steps=256",
              "--set", "strategy.subpop_size=2", "--set", "strategy.evaluators=1",  # 5 workers
              "--set", "strategy.max_eval_steps=768", "--set", "strategy.min_steps_before_eval=(256,)"]
SHRINK_FIRE = FIRE_SMALL + ["--set", "agent.hparams.num_envs=2", "--set", "agent.hparams.num_steps=64"]


def _run(tmp_path, exp_file, *args, timeout=180):
    runs = tmp_path / "runs"
    res = run_cli(str(EXP / exp_file), *args, "--runs-dir", str(runs), "--quiet", timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = list(runs.iterdir())
    recs = [json.loads(line) for line in (run / "decisions.jsonl").read_text().splitlines()]
    return pd.read_csv(run / "curves.csv"), recs


def test_copy_makes_the_destination_act_like_the_source_and_new_hparams_reach_the_optimiser(tmp_path):
    src, dst = CleanPPO("CartPole-v1", {**SMALL, "lr": 1e-3}, seed=1), CleanPPO("CartPole-v1", SMALL, seed=2)
    try:
        src.train(256), dst.train(128)
        state = src.get_state()
        torch.save(state, tmp_path / "s.pt")  # a checkpoint of it loads without unpickling arbitrary objects
        loaded = torch.load(tmp_path / "s.pt", weights_only=True)
        dst.set_state(loaded)
        for k, v in src.net.state_dict().items():
            assert torch.equal(dst.net.state_dict()[k], v), k
        a, b = src.opt.state_dict(), dst.opt.state_dict()
        for p in a["state"]:
            for k in a["state"][p]:
                assert torch.equal(a["state"][p][k], b["state"][p][k]), (p, k)
        assert dst.get_hparams()["lr"] == 1e-3 and dst.opt.param_groups[0]["lr"] == 1e-3
        obs = torch.randn(5, 4)
        assert torch.equal(src.actor(obs), dst.actor(obs))  # same policy
        # the exploit's last step (controller._copy): the destination's own hparams, read at the next update
        dst.set_hparams({"lr": 1.2345e-3, "clip": 0.15, "num_envs": 2})  # a fixed one at its value is accepted
        res = dst.train(128)
        assert dst.opt.param_groups[0]["lr"] == 1.2345e-3 and res.metrics["lr"] == 1.2345e-3
        assert res.steps >= 128 and res.updates[0]["steps"] == 128
        assert torch.equal(src.actor(obs), src.actor(obs)) and not torch.equal(src.actor(obs), dst.actor(obs))
        for bad, name in (({"lrr": 1.0}, "lrr"), ({"num_envs": 8}, "num_envs")):
            with pytest.raises(ValueError, match=name):
                dst.set_hparams(bad)
    finally:
        src.close(), dst.close()


def test_cleanrl_learner_learns_cartpole():
    """Random play on CartPole-v1 averages ~22; the last 20 episodes after 12k steps must average > 100."""
    learner = CleanPPO("CartPole-v1", {"lr": 1e-3}, seed=0)
    try:
        returns = []
        for _ in range(6):
            returns += learner.train(2048).episode_returns
    finally:
        learner.close()
    first, last = np.mean(returns[:20]), np.mean(returns[-20:])
    assert first < 40 and last > 100, (first, last)


def test_cleanrl_pbt_inline_exploits(tmp_path):
    curves, recs = _run(tmp_path, "cleanrl_pbt.py", "--backend", "inline", *SHRINK_PBT)
    assert sorted(curves.worker.unique()) == [0, 1, 2, 3] and curves.step.max() == 512
    assert any(r["kind"] == "exploit" for r in recs)


def test_cleanrl_fire_inline(tmp_path):
    curves, recs = _run(tmp_path, "cleanrl_fire.py", "--backend", "inline", *SHRINK_FIRE)
    kinds = {r["kind"] for r in recs}
    assert sorted(curves.worker.unique()) == [0, 1, 2, 3, 4] and "exploit" in kinds and "assign" in kinds, kinds


def test_cleanrl_pbt_on_ray(tmp_path, request):
    address = request.getfixturevalue("ray_cluster").test_address
    curves, recs = _run(tmp_path, "cleanrl_pbt.py", "--address", address, *SHRINK_PBT,
                        "--set", "strategy.population=2", timeout=240)
    assert sorted(curves.worker.unique()) == [0, 1] and curves.step.max() == 512
    assert any(r["kind"] == "exploit" for r in recs)


def test_custom_env_fire_inline(tmp_path):
    curves, recs = _run(tmp_path, "custom_env_fire.py", "--backend", "inline", *FIRE_SMALL,
                        "--set", "agent.hparams.rollout_steps=128", "--set", "agent.hparams.epochs=2")
    assert sorted(curves.worker.unique()) == list(range(5))  # 2 x 2 members + 1 evaluator
    assert curves[curves.role == "member"].groupby("worker").step.max().eq(1024).all()
    assert curves.q.notna().any()
