"""The trained agent leaves the run: the kept best states, rlpop.load_run, rlpop export and rlpop evaluate."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, run_cli, start_gated_run
from rlpop.experiment import FIRE, PBT, Agent, Experiment
from rlpop.hparams import LogUniform
from rlpop.run import execute
from rlpop.store import RunDir

HP = {"ppo": {"rollout_steps": 128, "envs_per_actor": 2, "epochs": 2},
      "vmpo": {"rollout_steps": 128, "envs_per_actor": 2, "minibatch_size": 128}}


def _make_run(root: Path, env: str, learner: str, extra: dict | None = None, **kw) -> Path:
    exp = Experiment(name=f"{learner}_{env.split('-')[0].lower()}", env=env,
                     agent=Agent(learner, hparams={**HP[learner], **(extra or {})}),
                     space={"lr": LogUniform(1e-4, 3e-3)}, strategy=kw.pop("strategy", PBT(population=2, ready_steps=256)),
                     total_steps=kw.pop("total_steps", 768), eval_steps=256, seed=kw.pop("seed", 0), **kw)
    run = RunDir.create(root, exp.name)
    assert execute(exp, run, "inline", quiet=True) == 0
    return run.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        ("ppo", "discrete"): _make_run(root, "Corridor-v0", "ppo"),
        ("ppo", "box"): _make_run(root, "Pendulum-v1", "ppo"),
        ("vmpo", "discrete"): _make_run(root, "Corridor-v0", "vmpo"),
        ("vmpo", "box"): _make_run(root, "Pendulum-v1", "vmpo", {"std": "state"}),  # the std-output head
    }


def _cli(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=240,
                          env={**os.environ, **(env or {})})


class _Res:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _main(capsys, module: str, *args: str) -> _Res:
    """``python -m module args`` in this process (the CLI's main), its exit status and output."""
    import importlib

    capsys.readouterr()
    rc = importlib.import_module(module).main(list(args))
    out = capsys.readouterr()
    return _Res(rc, out.out, out.err)


# a process that never imports rlpop: torch, numpy and the exported file
_STANDALONE = r'''
import json, sys
import numpy as np
import torch
path, fmt, obs_file, out_file = sys.argv[1:5]
obs = np.load(obs_file)
if fmt == "pt2":
    policy = torch.export.load(path).module()
    actions = policy(torch.as_tensor(obs)).numpy()
elif fmt == "torchscript":
    actions = torch.jit.load(path)(torch.as_tensor(obs)).numpy()
else:
    import onnxruntime
    s = onnxruntime.InferenceSession(path)
    actions = s.run(None, {"obs": obs})[0]
np.save(out_file, actions)
assert not any(m == "rlpop" or m.startswith("rlpop.") for m in sys.modules), "rlpop was imported"
print(json.dumps({"ok": True, "dtype": str(actions.dtype), "shape": list(actions.shape)}))
'''


def _learner_actions(run, obs):
    """The learner's own deterministic action on ``obs``: normalize_obs (float64) + ActorCritic.act + clip."""
    import torch
    from gymnasium import spaces

    from rlpop.agents.normalize import normalize_obs
    from rlpop.policy import net_from_state

    best, state = run.member_state()
    env = run.make_env()
    net = net_from_state(state, env.observation_space, env.action_space)
    x = normalize_obs(obs, state["obs_rms"]["mean"], state["obs_rms"]["var"]) if state["hparams"]["norm_obs"] else obs
    a, _ = net.act(torch.as_tensor(x), deterministic=True)
    a = a.numpy()
    if isinstance(env.action_space, spaces.Box):
        a = np.clip(a, env.action_space.low, env.action_space.high)
    return a


@pytest.mark.parametrize("key", [("ppo", "discrete"), ("ppo", "box"), ("vmpo", "discrete"), ("vmpo", "box")],
                         ids=lambda k: "-".join(k))
def test_exported_policy_runs_with_torch_alone_and_acts_as_in_process(runs, key, tmp_path):
    import rlpop
    from rlpop.export import main as export_main

    run = rlpop.load_run(runs[key])
    out = tmp_path / "policy.pt2"
    assert export_main([str(run.path), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "policy.json").read_text())
    best = run.best()
    assert (meta["member"], meta["step"], meta["round"], meta["checkpoint"]) == \
        (best.member, best.step, best.round, "best")
    assert meta["q"] == pytest.approx(best.q) and meta["env"] == run.config["env"]
    assert meta["hparams"]["lr"] == pytest.approx(best.hparams["lr"]) and meta["learner"] == key[0]
    space = run.make_env().observation_space
    space.seed(1)
    obs = np.stack([space.sample() for _ in range(100)]).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = tmp_path / "standalone.py"
    script.write_text(_STANDALONE)
    res = subprocess.run([sys.executable, str(script), str(out), "pt2", str(tmp_path / "obs.npy"),
                          str(tmp_path / "act.npy")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert res.returncode == 0, res.stderr[-3000:]
    exported = np.load(tmp_path / "act.npy")
    policy = run.policy()
    mine = policy(obs)
    assert exported.shape == mine.shape == ((100,) if key[1] == "discrete" else (100, 1))
    assert np.abs(exported.astype(np.float64) - mine).max() <= 1e-5
    assert np.abs(mine - _learner_actions(run, obs)).max() <= 1e-5  # the learner's own deterministic action
    if key[1] == "discrete":
        assert exported.dtype == np.int64 and set(np.unique(exported)) <= {0, 1}
    else:  # the Gaussian's mean, clipped to Pendulum's [-2, 2]
        assert exported.dtype == np.float32 and np.abs(exported).max() <= 2.0
    assert policy(obs[0]).shape == mine[0].shape  # one observation -> one action


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_other_formats_act_the_same(runs, fmt, tmp_path):
    import rlpop
    from rlpop.export import main as export_main

    if fmt == "onnx":
        for mod in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(mod, reason=f"--format onnx needs {mod}")
    run = rlpop.load_run(runs[("ppo", "box")])
    out = tmp_path / f"policy{'.ts' if fmt == 'torchscript' else '.onnx'}"
    assert export_main([str(run.path), "--out", str(out), "--format", fmt, "--checkpoint", "latest"]) == 0
    meta = json.loads((tmp_path / "policy.json").read_text())
    assert meta["format"] == fmt and meta["checkpoint"] == "latest"
    obs = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    (tmp_path / "s.py").write_text(_STANDALONE)
    res = subprocess.run([sys.executable, str(tmp_path / "s.py"), str(out), fmt, str(tmp_path / "obs.npy"),
                          str(tmp_path / "act.npy")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    mine = run.policy(checkpoint="latest")(obs)
    assert np.abs(np.load(tmp_path / "act.npy") - mine).max() <= 1e-5
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(("obs", "act", "s."))) == \
        sorted([out.name, "policy.json"])  # one file (ONNX weights inside), its sidecar, nothing else


@pytest.mark.parametrize("key", [("ppo", "box"), ("vmpo", "discrete")], ids=lambda k: "-".join(k))
def test_evaluate_of_the_file_and_of_the_run_dir_agree(runs, key, tmp_path, capsys):
    from rlpop.evaluate import main as evaluate_main
    from rlpop.export import main as export_main

    run = runs[key]
    assert export_main([str(run), "--out", str(tmp_path / "p.pt2")]) == 0
    assert evaluate_main([str(tmp_path / "p.pt2"), "--episodes", "3", "--seed", "7"]) == 0
    assert evaluate_main([str(run), "--episodes", "3", "--seed", "7", "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "return " in out and " ± " in out and "length " in out
    from_file = json.loads((tmp_path / "p.eval-seed7.json").read_text())
    from_run = json.loads((tmp_path / "r.json").read_text())
    assert from_file["seeds"] == from_run["seeds"] == [7, 8, 9]
    assert from_file["returns"] == pytest.approx(from_run["returns"], rel=1e-6, abs=1e-9)
    assert from_file["lengths"] == from_run["lengths"]
    assert from_file["mean_return"] == pytest.approx(np.mean(from_file["returns"]))
    # seeded: the same seed gives the same episodes, another seed other ones (Pendulum starts at random)
    assert evaluate_main([str(run), "--episodes", "3", "--seed", "7", "--out", str(tmp_path / "r2.json")]) == 0
    assert json.loads((tmp_path / "r2.json").read_text())["returns"] == from_run["returns"]
    if key[1] == "box":
        assert evaluate_main([str(run), "--episodes", "3", "--seed", "8", "--out", str(tmp_path / "r3.json")]) == 0
        assert json.loads((tmp_path / "r3.json").read_text())["returns"][:2] == from_run["returns"][1:]
        # stochastic, from the run directory: seeded too, and not the deterministic returns
        args = [str(run), "--episodes", "2", "--seed", "7", "--stochastic"]
        assert evaluate_main([*args, "--out", str(tmp_path / "s1.json")]) == 0
        assert evaluate_main([*args, "--out", str(tmp_path / "s2.json")]) == 0
        s1 = json.loads((tmp_path / "s1.json").read_text())
        assert s1["returns"] == json.loads((tmp_path / "s2.json").read_text())["returns"]
        assert s1["returns"] != from_run["returns"][:2] and not s1["deterministic"]


def test_video_is_recorded_where_rendering_works(tmp_path):
    from rlpop.evaluate import choose_mujoco_gl, main as evaluate_main
    from rlpop.policy import PolicyError

    pytest.importorskip("moviepy", reason="--video needs moviepy (pip install 'rlpop[video]')")
    try:
        backend = choose_mujoco_gl()
    except PolicyError as exc:
        pytest.skip(f"MuJoCo cannot render headless here: {exc}")
    run = _make_run(tmp_path / "runs", "InvertedPendulum-v5", "ppo", total_steps=256)
    video = tmp_path / "video"
    assert evaluate_main([str(run), "--episodes", "2", "--video", str(video)]) == 0, backend
    files = sorted(video.glob("*.mp4"))
    assert len(files) == 2 and all(f.stat().st_size > 1000 for f in files)
    assert not [p for p in video.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    result = json.loads(next((run / "evaluations").glob("*.json")).read_text())
    assert sorted(result["videos"]) == [str(f) for f in files]


# --------------------------------------------------------------------------- keep the best
def test_each_subpopulation_keeps_its_best_member_at_its_best_q(tmp_path):
    import rlpop

    strategy = FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=256, max_eval_steps=512,
                    min_steps_before_eval=(256,))
    path = _make_run(tmp_path, "Corridor-v0", "ppo", strategy=strategy, total_steps=1280, seed=3)
    run = rlpop.load_run(path)
    kept = run.kept_best()
    assert sorted(kept) == [1, 2]
    members = run.curves[run.curves.role == "member"]
    for sp, entry in kept.items():
        rows = members[members.subpop == sp]
        top = rows.loc[rows.q.idxmax()]
        assert entry["q"] == pytest.approx(top.q)
        # the first round that reached that Q, and a member of that round with it
        first = rows[rows.q == top.q].sort_values("round").iloc[0]
        assert entry["round"] == first["round"]
        assert entry["worker"] in set(rows[(rows["round"] == first["round"]) & (rows.q == top.q)].worker)
        assert entry["step"] == int(rows[(rows.worker == entry["worker"]) & (rows["round"] == entry["round"])].step.iloc[0])
    files = sorted(p.name for p in (path / "checkpoints").glob("best-*.pt"))
    assert files == sorted(e["file"] for e in kept.values())  # one file per sub-population
    best = run.best()
    assert best.q == max(e["q"] for e in kept.values()) and best.checkpoint == "best"
    b, state = run.member_state()
    assert b == best and int(state["env_steps"]) == best.step  # the state of that round, not a later one


def test_a_resume_forgets_kept_states_past_its_checkpoint(tmp_path):
    rd = RunDir.create(tmp_path, "r")
    (rd.path / "config.json").write_text("{}")
    rd.save_best({"worker": 0, "subpop": 1, "round": 2, "step": 10, "q": 1.0, "hparams": {}}, {"learner": {}})
    rd.save_best({"worker": 1, "subpop": 2, "round": 3, "step": 10, "q": 1.0, "hparams": {}}, {"learner": {}})
    rd.save_best({"worker": 0, "subpop": 1, "round": 5, "step": 20, "q": 2.0, "hparams": {}}, {"learner": {}})
    assert sorted(p.name for p in (rd.path / "checkpoints").glob("best-*")) == \
        ["best-P1-00000005.pt", "best-P2-00000003.pt"]  # the older P1 file is gone
    rd.truncate_after(4)
    assert list(rd.read_best_index()) == [2]
    assert [p.name for p in (rd.path / "checkpoints").glob("best-*")] == ["best-P2-00000003.pt"]


# --------------------------------------------------------------------------- load_run
def test_load_run_on_a_run_in_progress_and_resumed(tmp_path, monkeypatch):
    import rlpop

    monkeypatch.syspath_prepend(str(DATA))  # the gated env's module, as the run imports it

    proc, runs, gate, env = start_gated_run(DATA / "tiny_pbt.py", tmp_path, at=300)  # blocked in round 3
    try:
        (path,) = list(runs.glob("tiny_pbt-*"))
        run = rlpop.load_run(path)
        assert not run.finished and run.status["round"] == 2
        assert len(run.curves) == 8 and set(run.curves["round"]) == {1, 2}
        assert {"loss", "round", "worker"} <= set(run.metrics.columns) or not run.metrics.empty
        best = run.best()
        assert best.round <= 2 and best.checkpoint == "best"
        assert run.policy()(np.zeros(2, np.float32)) in (0, 1)
        assert len(run.lineage()) >= 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    (gate / "release").touch()
    res = run_cli("--resume", str(path), "--quiet", env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = rlpop.load_run(path)
    assert run.finished and len(run.curves) == 32 and sorted(set(run.curves["round"])) == list(range(1, 9))
    assert run.best().q == pytest.approx(run.curves.q.max())
    assert run.best("latest").round == 8
    assert isinstance(run.decisions, __import__("pandas").DataFrame) and "kind" in run.decisions.columns
    assert run.config["name"] == "tiny_pbt"
    assert run.evaluate(episodes=2)["episodes"] == 2


# --------------------------------------------------------------------------- bad input
def _one_line_error(res) -> str:
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_bad_input_one_line_exit_2_nothing_written(runs, tmp_path, capsys):
    run = runs[("ppo", "discrete")]
    before = sorted(p.name for p in run.rglob("*"))
    line = _one_line_error(_main(capsys, "rlpop.export", str(run), "--member", "99", "--checkpoint", "latest"))
    assert "member 99 is not a worker" in line and "w0" in line
    best = json.loads((run / "checkpoints" / "best.json").read_text())["P1"]["worker"]
    other = 1 - best
    line = _one_line_error(_main(capsys, "rlpop.export", str(run), "--member", str(other)))
    assert f"member {other} has no kept best state" in line and "--checkpoint latest" in line
    line = _one_line_error(_main(capsys, "rlpop.evaluate", str(run), "--member", "x"))
    assert "--member 'x'" in line
    line = _one_line_error(_main(capsys, "rlpop.export", str(tmp_path)))
    assert "not an rlpop run directory" in line
    # --video where the env renders nothing (Corridor has no render mode), or moviepy is missing
    line = _one_line_error(_main(capsys, "rlpop.evaluate", str(run), "--video", str(tmp_path / "v")))
    assert "--video" in line and "drop --video" in line
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written in the run directory
    assert not (tmp_path / "v").exists() or not list((tmp_path / "v").iterdir())
    # a policy file: --stochastic, and a custom env whose module does not import here
    out = tmp_path / "p.pt2"
    assert _main(capsys, "rlpop.export", str(run), "--out", str(out)).returncode == 0
    line = _one_line_error(_main(capsys, "rlpop.evaluate", str(out), "--stochastic"))
    assert "--stochastic needs the run directory" in line
    meta = json.loads((tmp_path / "p.json").read_text())
    meta.update(env="Elsewhere-v0", env_registration={"entry_point": "my_far_envs:Elsewhere", "kwargs": {},
                                                        "max_episode_steps": None},
                experiment_dir=str(tmp_path / "exp"), run_dir=str(tmp_path / "gone"))
    (tmp_path / "p.json").write_text(json.dumps(meta))
    line = _one_line_error(_cli("rlpop.evaluate", str(out)))
    assert "env 'Elsewhere-v0'" in line and "my_far_envs" in line and f"PYTHONPATH={tmp_path / 'exp'}" in line
    assert not (tmp_path / "p.eval-seed0.json").exists()
    line = _one_line_error(_main(capsys, "rlpop.evaluate", str(tmp_path / "missing.pt2")))
    assert "no such policy file" in line


def test_a_run_killed_in_round_1_has_nothing_to_export(tmp_path, capsys):
    """A run stopped before its first checkpoint interval: only the round-0 checkpoint (no member trained)."""
    from rlpop.backends.inline import InlineBackend
    from rlpop.controller import Controller

    exp = Experiment(name="early", env="Corridor-v0", agent=Agent("ppo", hparams=HP["ppo"]),
                     space={"lr": LogUniform(1e-4, 3e-3)}, strategy=PBT(population=2, ready_steps=256),
                     total_steps=768, eval_steps=256)
    rd = RunDir.create(tmp_path, "early")
    rd.write_config(exp.to_dict())
    ctl = Controller(exp, rd, InlineBackend())
    ctl.start()
    ctl.checkpoint()  # what run() writes before round 1
    ctl.backend.close()
    for args in ([], ["--checkpoint", "latest"], ["--checkpoint", "best"]):
        line = _one_line_error(_main(capsys, "rlpop.export", str(rd.path), *args))
        assert "no checkpoint with a trained member yet" in line and "rlpop run --resume" in line
    line = _one_line_error(_main(capsys, "rlpop.evaluate", str(rd.path)))
    assert "no checkpoint with a trained member yet" in line
    assert not (rd.path / "exports").exists() and not (rd.path / "evaluations").exists()


def test_an_own_learner_without_an_export_hook_is_refused_in_one_line(tmp_path, capsys):
    exp = Experiment(name="toy", env=None, agent=Agent("toy"), space={"lr": LogUniform(0.01, 0.1)},
                     strategy=PBT(population=2, ready_steps=10), total_steps=30, eval_steps=10)
    rd = RunDir.create(tmp_path, "toy")
    assert execute(exp, rd, "inline", quiet=True) == 0
    line = _one_line_error(_main(capsys, "rlpop.export", str(rd.path)))
    assert "has no export hook" in line and "export(self, path)" in line
    assert not (rd.path / "exports").exists() or not list((rd.path / "exports").iterdir())


def test_sb3_member_exports_sb3s_own_zip(tmp_path):
    pytest.importorskip("stable_baselines3")
    exp = Experiment(name="sb3", env="CartPole-v1",
                     agent=Agent("sb3:PPO", hparams={"n_steps": 64, "n_envs": 2, "batch_size": 64, "n_epochs": 1}),
                     space={"lr": LogUniform(5e-4, 2e-3)}, strategy=PBT(population=2, ready_steps=256),
                     total_steps=512, eval_steps=256)
    rd = RunDir.create(tmp_path, "sb3")
    assert execute(exp, rd, "inline", quiet=True) == 0
    res = _cli("rlpop.export", str(rd.path), "--out", str(tmp_path / "agent.zip"))
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "agent.json").read_text())
    assert meta["format"] == "sb3" and "agent.zip" in meta["files"] and "PPO.load" in meta["load"]
    code = ("import numpy as np, sys; from stable_baselines3 import PPO; m = PPO.load(sys.argv[1]); "
            "a, _ = m.predict(np.zeros((3, 4), np.float32), deterministic=True); print(list(a)); "
            "assert 'rlpop' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "agent.zip")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    line = _one_line_error(_cli("rlpop.export", str(rd.path), "--format", "onnx"))
    assert "exports in its own format" in line
    line = _one_line_error(_cli("rlpop.evaluate", str(rd.path)))
    assert "for ppo and vmpo members only" in line and "sb3:PPO" in line


def test_env_wrappers_travel_with_the_policy(tmp_path, capsys):
    """The run's env_wrappers are in the sidecar, and evaluate builds its envs with them (file and run dir)."""
    from rlpop.evaluate import main as evaluate_main
    from rlpop.export import main as export_main

    limit = ["gymnasium.wrappers:TimeLimit", {"max_episode_steps": 4}]
    run = _make_run(tmp_path / "runs", "Corridor-v0", "ppo", env_wrappers=[tuple(limit)])
    assert export_main([str(run), "--out", str(tmp_path / "p.pt2")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["env_wrappers"] == [limit]
    for target in (tmp_path / "p.pt2", run):
        assert evaluate_main([str(target), "--episodes", "2", "--out", str(tmp_path / "e.json")]) == 0
        assert json.loads((tmp_path / "e.json").read_text())["lengths"] == [4, 4]  # Corridor needs 9 steps
