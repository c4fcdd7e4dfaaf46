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


def test_register_env_registers_with_gymnasium():
    register_env("CorridorLong-v0", "rlpop.envs.corridor:Corridor", length=20)
    env = gym.make("CorridorLong-v0")
    assert env.unwrapped.length == 20


def test_register_env_makes_the_env_buildable_by_name_in_a_fresh_ray_worker(ray_cluster, monkeypatch):
    """A run-time ``register_env`` (Ray imported) reaches Ray's registry: RLlib, in a Ray worker that never
    imported rlpop, builds the env from its bare name -- gymnasium there does not know the name, only Ray's
    registry does (its creator imports rlpop.envs, which replays the shipped registration)."""
    from rlpop.backends.ray_backend import runtime_env
    from rlpop.envs import SHIP_VAR

    ray = ray_cluster
    monkeypatch.delenv(SHIP_VAR, raising=False)  # restored after the test
    register_env("RayRegisteredCartPole-v0", "gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                 max_episode_steps=7)

    @ray.remote
    def build(name):
        import sys

        import gymnasium

        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

        unknown_here = name not in gymnasium.registry and "rlpop.envs" not in sys.modules
        runner = SingleAgentEnvRunner(config=PPOConfig().environment(name))
        (env,) = runner.env.unwrapped.envs
        return unknown_here, type(env.unwrapped).__name__, env.spec.max_episode_steps

    # the driver's runtime environment (as the Ray backend starts its workers): a worker of its own, so no
    # earlier task has imported rlpop.envs there
    opts = {"runtime_env": runtime_env(None)}
    assert ray.get(build.options(**opts).remote("RayRegisteredCartPole-v0"), timeout=240) == (
        True, "CartPoleEnv", 7)


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


def test_custom_env_builds_in_a_spawned_env_process():
    import numpy as np

    from rlpop.agents.envbank import ProcBank

    bank = ProcBank("Corridor-v0", {}, seeds=[0], num_envs=2, num_actors=1)
    try:
        assert bank.observe([0]).shape == (1, 2, 2)
        steps = [bank.step([0], np.ones((1, 2), np.int64)) for _ in range(60)]
        assert sum(int((s.terminated | s.truncated).sum()) for s in steps) >= 2  # episodes end (and restart)
    finally:
        bank.close()


def test_custom_env_in_a_ray_actor(ray_cluster):
    ray = ray_cluster

    @ray.remote
    def build(env_id):
        from rlpop.envs import make_env

        env = make_env(env_id)
        return env.reset(seed=0)[0].tolist()

    assert ray.get(build.remote("Corridor-v0")) == [0.0, 0.0]


def test_a_new_name_for_one_of_rlpops_own_envs_reaches_other_processes(monkeypatch):
    """Only the names ``rlpop.envs`` registers itself go unshipped: ``CorridorLong-v0`` made from rlpop's own
    Corridor class at run time is built by a fresh process (as a Ray worker or an env process would)."""
    import json
    import os
    import subprocess
    import sys

    from rlpop.envs import SHIP_VAR

    monkeypatch.delenv(SHIP_VAR, raising=False)  # restored after the test
    register_env("CorridorLong-v0", "rlpop.envs.corridor:Corridor", length=20)
    shipped = json.loads(os.environ[SHIP_VAR])
    assert shipped["CorridorLong-v0"]["kwargs"] == {"length": 20} and "Corridor-v0" not in shipped
    out = subprocess.run([sys.executable, "-c", "import rlpop.envs, gymnasium; "
                          "print(gymnasium.make('CorridorLong-v0').unwrapped.length)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "20", out.stderr
