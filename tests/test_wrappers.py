"""Gymnasium conformance at spec time, and env_wrappers applied in every process that builds envs."""
import sys
import textwrap

import pytest

from conftest import DATA
from rlpop.experiment import Agent, Experiment, RandomSearch
from rlpop.run import main

sys.path.insert(0, str(DATA))  # space_envs, as an experiment's own module (rlpop.run does the same)

PPO_HP = {"rollout_steps": 64, "envs_per_actor": 2, "epochs": 1, "minibatch_size": 32}
FLATTEN = "gymnasium.wrappers:FlattenObservation"


def exp(env="space_envs:DictObs-v0", wrappers=(), **hp):
    return Experiment(name="w", env=env, agent=Agent("ppo", hparams={**PPO_HP, **hp}),
                      strategy=RandomSearch(population=2), total_steps=128, eval_steps=64, env_wrappers=wrappers)


def write_experiment(tmp_path, env, wrappers=(), **hp):
    f = tmp_path / "exp.py"
    f.write_text(textwrap.dedent(f"""
        from rlpop.experiment import Agent, Experiment, RandomSearch
        experiment = Experiment(name="w", env={env!r}, agent=Agent("ppo", hparams={({**PPO_HP, **hp})!r}),
                                strategy=RandomSearch(population=2), total_steps=128, eval_steps=64,
                                env_wrappers={list(wrappers)!r})
        """))
    return f


@pytest.mark.parametrize("env, needle", [
    ("space_envs:DictObs-v0", "observation space Dict('flag': Discrete(2), 'pos': Box(-1.0, 1.0, (2,), float32)): "
                              "learner 'ppo' (an MLP) takes a flat Box; add env_wrappers=["
                              "'gymnasium.wrappers:FlattenObservation'] to the experiment"),
    ("space_envs:ImageObs-v0", "observation space Box(0, 255, (8, 8, 3), uint8) looks like an image"),
    ("space_envs:MultiDiscreteAct-v0", "action space MultiDiscrete([3 2]): learner 'ppo' (an MLP) takes Discrete or "
                                       "Box actions, not MultiDiscrete; map a Discrete(n) or Box action to it with "
                                       "gymnasium.wrappers:TransformAction"),
])
def test_spaces_the_learner_cannot_take_fail_before_the_run_dir(env, needle, tmp_path, capsys):
    rc = main([str(write_experiment(tmp_path, env)), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: env={env!r}: " in err and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("wrappers, needle", [
    ("gymnasium.wrappers:FlattenObservation", "env_wrappers='gymnasium.wrappers:FlattenObservation': give a list"),
    (["gymnasium.wrappers:NoSuchWrapper"], "env_wrappers[0]='gymnasium.wrappers:NoSuchWrapper': cannot load it"),
    ([lambda env: env], "cannot be imported by name in other processes"),
    ([42], "env_wrappers[0]=42: give 'module:Wrapper', a wrapper class, or (wrapper, {kwargs})"),
    ([("space_envs:MarkPid", {"tag": object()})], "env_wrappers[0]: kwargs"),
])
def test_bad_wrappers_name_the_field(wrappers, needle):
    with pytest.raises(ValueError) as exc:
        exp(wrappers=wrappers)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_envpool_takes_no_wrappers():
    with pytest.raises(ValueError, match="env_wrappers: EnvPool cannot take gymnasium wrappers"):
        exp(env="Hopper-v5", wrappers=[FLATTEN], env_backend="envpool")


def test_wrappers_normalise_and_reach_make_env():
    import gymnasium as gym

    from rlpop.envs import make_env
    from space_envs import MarkPid

    e = exp(wrappers=[gym.wrappers.FlattenObservation, (MarkPid, {"tag": "t1"})])
    assert e.env_wrappers[0][0].startswith("gymnasium.wrappers") and e.env_wrappers[0][0].endswith(":FlattenObservation")
    assert e.env_wrappers[1] == ("space_envs:MarkPid", {"tag": "t1"})
    assert e.to_dict()["env_kwargs"] == {} and e.to_dict()["env_wrappers"][1] == ["space_envs:MarkPid", {"tag": "t1"}]
    env = make_env(e.env, **e.env_kwargs)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4,) and info["tag"] == "t1"  # flattened: pos (2) + one-hot flag (2); MarkPid outermost
    again = e.with_overrides({"total_steps": "256"})  # the wrappers survive --set and re-validation
    assert again.env_kwargs == e.env_kwargs and again.env_wrappers == e.env_wrappers


@pytest.mark.parametrize("num_actors", [0, 1])
def test_run_with_wrappers_inline_and_in_env_processes(num_actors, tmp_path):
    """The Dict-observation env trains once FlattenObservation is listed: in the learner's process, and in a
    spawned env process (which builds its envs from env_kwargs alone)."""
    f = write_experiment(tmp_path, "space_envs:DictObs-v0", [FLATTEN], num_actors=num_actors)
    assert main([str(f), "--quiet", "--runs-dir", str(tmp_path / "runs")]) == 0


def test_run_with_wrappers_on_ray(tmp_path, ray_cluster):
    from rlpop.run import execute
    from rlpop.store import RunDir

    e = exp(wrappers=[FLATTEN])
    e.backend = "ray"
    assert execute(e, RunDir.create(tmp_path, "w"), "ray", quiet=True) == 0
