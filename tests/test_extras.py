"""A feature whose extra is missing fails at spec time, in one line naming the extra -- before any run directory.

The missing library is simulated with ``sys.modules[name] = None`` (what Python does for a module that failed to
import): nothing is uninstalled.
"""
import importlib.metadata

import pytest

from conftest import ROOT
from rlpop.experiment import ASHA, PBT, Agent, Experiment
from rlpop.extras import installed, require
from rlpop.hparams import LogUniform

TOY = dict(name="t", env=None, agent=Agent("toy"), space={"lr": LogUniform(0.05, 1.0)}, total_steps=400,
           eval_steps=20)


def hide(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(__import__("sys").modules, name, None)


def test_installed_sees_a_hidden_module(monkeypatch):
    assert installed("optuna") and installed("ray.rllib")
    hide(monkeypatch, "optuna", "ray")
    assert not installed("optuna") and not installed("ray.rllib") and not installed("ray")
    assert not installed("no_such_module_rlpop")


def test_ray_backend_in_the_spec(monkeypatch):
    hide(monkeypatch, "ray")
    with pytest.raises(ValueError, match=r"^backend='ray' needs Ray, which is not installed: "
                                         r"pip install 'rlpop\[ray\]'$"):
        Experiment(**TOY, strategy=PBT(population=2, ready_steps=100), backend="ray")


@pytest.mark.parametrize("flags, how", [(["--backend", "ray"], "--backend ray"),
                                        (["--address", "127.0.0.1:1"], "--address")])
def test_ray_backend_from_the_cli(monkeypatch, tmp_path, capsys, flags, how):
    from rlpop.run import main

    hide(monkeypatch, "ray")
    rc = main([str(ROOT / "experiments" / "toy_pbt.py"), *flags, "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err == f"error: {how} needs Ray, which is not installed: pip install 'rlpop[ray]'\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("search", ["tpe", "gp"])
def test_bayesian_search_needs_optuna(monkeypatch, search):
    hide(monkeypatch, "optuna")
    with pytest.raises(ValueError, match=rf"^strategy.search='{search}' needs Optuna, which is not installed: "
                                         r"pip install 'rlpop\[optuna\]'$"):
        Experiment(**TOY, strategy=ASHA(population=2, max_t=200, grace_period=40, search=search))
    Experiment(**TOY, strategy=ASHA(population=2, max_t=200, grace_period=40))  # random search needs nothing


def test_sb3_member_needs_sb3(monkeypatch):
    hide(monkeypatch, "stable_baselines3")
    with pytest.raises(ValueError, match=r"^agent.learner='sb3:PPO' needs stable-baselines3, which is not "
                                         r"installed: pip install 'rlpop\[sb3\]'$"):
        Experiment(name="t", env="CartPole-v1", agent=Agent("sb3:PPO"))


def test_sb3_too_old(monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda d: "2.3.2" if d == "stable-baselines3" else real(d))
    with pytest.raises(ValueError, match=r"needs stable-baselines3 >= 2.7 \(installed: 2.3.2\): "
                                         r"pip install -U 'rlpop\[sb3\]'$"):
        require("sb3", "agent.learner='sb3:PPO'")


def test_rllib_member_needs_rllib(monkeypatch):
    hide(monkeypatch, "ray", "ray.rllib")
    with pytest.raises(ValueError, match=r"^agent.learner='rllib:PPO' needs RLlib \(ray\[rllib\]\), which is not "
                                         r"installed: pip install 'rlpop\[rllib\]'$"):
        Experiment(name="t", env="CartPole-v1", agent=Agent("rllib:PPO"))


def test_envpool_backend_needs_envpool(monkeypatch):
    hide(monkeypatch, "envpool")
    with pytest.raises(ValueError, match=r"^agent.hparams.env_backend='envpool' needs EnvPool, which is not "
                                         r"installed: pip install 'rlpop\[envpool\]'$"):
        Experiment(name="t", env="Hopper-v5", agent=Agent("ppo", hparams={"env_backend": "envpool"}))


def test_core_needs_no_extra(monkeypatch):
    """The README's quick job and the toy build with every extra hidden (spec, strategy, learner class)."""
    hide(monkeypatch, "ray", "ray.rllib", "optuna", "stable_baselines3", "envpool", "wandb", "mlflow")
    from rlpop.run import load_experiment

    for f in ("quick_fire.py", "toy_fire.py", "toy_pbt.py", "hopper_pbt.py"):
        load_experiment(ROOT / "experiments" / f).build_strategy()


def test_envpool_missing_is_a_note_for_mujoco_populations(monkeypatch):
    """Not an error: the same env steps in gymnasium; the note names the extra (Linux, batched, MuJoCo only)."""
    import sys as _sys

    e = Experiment(name="t", env="Hopper-v5", agent=Agent("ppo"), strategy=PBT(population=2, ready_steps=20_000))
    assert not any("EnvPool" in n for n in e.notes)  # installed here
    hide(monkeypatch, "envpool")
    notes = [n for n in e.notes if "EnvPool" in n]
    if _sys.platform.startswith("linux"):
        assert len(notes) == 1 and notes[0].startswith("env='Hopper-v5' steps in gymnasium vector envs: EnvPool")
        assert notes[0].endswith("is not installed; pip install 'rlpop[envpool]'")
    pendulum = Experiment(name="t", env="Pendulum-v1", agent=Agent("ppo"), strategy=PBT(population=2,
                                                                                        ready_steps=20_000))
    assert not any("EnvPool" in n for n in pendulum.notes)  # EnvPool does not provide it: nothing to say
