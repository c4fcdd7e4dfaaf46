"""An env defined in a plain module beside an experiment file (not installed) and registered by
``register_env`` in that file reaches every process that builds an env: spawned env and actor processes, and
Ray workers, on the batched and the per-member engine."""
import pandas as pd
import pytest

from conftest import run_cli

ENV_MODULE = '''
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class PlainEnv(CartPoleEnv):
    """CartPole under another name, in a module that is not installed."""
'''

EXPERIMENT = '''
from rlpop.envs import register_env

register_env("PlainCartPole-v0", "plain_env_mod:PlainEnv", max_episode_steps=200)

from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="plug", env="PlainCartPole-v0",
    agent=Agent("ppo", hparams={"rollout_steps": 256, "num_actors": 2, "envs_per_actor": 1, "epochs": 2}),
    space={"lr": LogUniform(1e-4, 1e-3)}, strategy=PBT(population=2, ready_steps=512),
    total_steps=512, eval_steps=256)
'''


@pytest.mark.parametrize("where", [["--backend", "inline"], ["ray"], ["ray", "--set", "engine=member"]],
                         ids=["inline-batched", "ray-batched", "ray-member"])
def test_env_registered_in_the_experiment_file_reaches_every_process(where, tmp_path, request):
    (tmp_path / "plain_env_mod.py").write_text(ENV_MODULE)
    exp = tmp_path / "plug.py"
    exp.write_text(EXPERIMENT)
    if where[0] == "ray":  # join the session's cluster: its workers never saw the experiment file
        where = ["--address", request.getfixturevalue("ray_cluster").test_address, *where[1:]]
    res = run_cli(str(exp), *where, "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = list((tmp_path / "runs").iterdir())
    curves = pd.read_csv(run / "curves.csv")
    assert sorted(curves.worker.unique()) == [0, 1] and curves.step.max() == 512
