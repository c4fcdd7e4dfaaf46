import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from rlpop.envs import check_env_id, make_env, register_env, registered


def test_corridor_is_registered_and_deterministic():
    assert "Corridor-v0" in registered()
    env = make_env("Corridor-v0")
    obs, _ = env.reset(seed=0)
    total, steps = 0.0, 0
    done = False
    while not done:
        obs, r, term, trunc, _ = env.step(1)
        total += r
        steps += 1
        done = term or trunc
    assert term and steps == 9 and total == pytest.approx(1 - 0.09)


def test_unknown_env_lists_registered_and_how_to_register():
    with pytest.raises(ValueError) as err:
        check_env_id("Hoper-v5")
    msg = str(err.value)
    assert "Hopper-v5" in msg  # the close match
    assert "Corridor-v0" in msg  # what rlpop registers
    assert "register_env" in msg and "my_pkg.my_module:MyEnv-v0" in msg


def test_register_env_registers_with_gymnasium_and_ray():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    register_env("CorridorLong-v0", "rlpop.envs.corridor:Corridor", length=20)
    env = gym.make("CorridorLong-v0")
    assert env.unwrapped.length == 20
    assert _global_registry.contains(ENV_CREATOR, "CorridorLong-v0")  # ray is imported here


def test_module_colon_id_form(tmp_path, monkeypatch):
    (tmp_path / "my_envs_pkg.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register(id="MyCorridor-v0", entry_point="rlpop.envs.corridor:Corridor", kwargs={"length": 4})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env("my_envs_pkg:MyCorridor-v0")
    assert env.unwrapped.length == 4
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg'"):
        check_env_id("no_such_pkg:X-v0")


def test_custom_env_builds_in_a_spawned_actor_process():
    from rlpop.agents.actors import ActorPool
    from rlpop.agents.networks import PolicySpec

    env = make_env("Corridor-v0")
    spec = PolicySpec("rlpop.agents.networks:ActorCritic",
                      {"observation_space": env.observation_space, "action_space": env.action_space})
    pool = ActorPool("Corridor-v0", {}, spec, num_actors=1, envs_per_actor=2, seed=0)
    try:
        net = spec.build()
        ro = pool.collect(net.state_dict(), None, 60)
        assert ro.obs.shape == (60, 2, 2) and ro.actions.shape == (60, 2)
        assert len(ro.episode_returns) >= 2  # 50-step time limit
    finally:
        pool.close()


def test_custom_env_in_a_ray_actor(ray_cluster):
    ray = ray_cluster

    @ray.remote
    def build(env_id):
        from rlpop.envs import make_env

        env = make_env(env_id)
        return env.reset(seed=0)[0].tolist()

    assert ray.get(build.remote("Corridor-v0")) == [0.0, 0.0]
