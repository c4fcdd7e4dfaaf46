"""Failure modes a user hits (issue 13): everything the spec can know is checked before the run directory
exists; nothing is silently accepted; a run whose members all failed exits non-zero and says why; failures
show on the console; NaN inputs name the env; a diverged member is replaced by a copy, not left on NaN; the
end of a run prints a summary."""
import json
import math
import sys

import numpy as np
import pytest

from conftest import DATA
from rlpop.agents.hparam_rules import check_space, integer, unit
from rlpop.experiment import FIRE, PBT, Agent, Experiment
from rlpop.hparams import Choice, LogUniform, Uniform
from rlpop.run import main

TINY = str(DATA / "tiny_ppo.py")


def cli(capsys, *args):
    """The CLI in this process (imports already paid): (exit code, stdout, stderr)."""
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("sets, needle", [
    (["agent.hparams.clip=abc"], "agent.hparams.clip='abc': expected a number > 0"),
    (["agent.hparams.num_actors=-1"], "agent.hparams.num_actors=-1: expected an integer >= 0"),
    (["agent.hparams.gamma=1.5"], "agent.hparams.gamma=1.5: expected a number in (0, 1]"),
    (["agent.hparams.rollout_steps=255"], "rollout_steps=255 must be a multiple of the number of envs"),
    (["agent.hparams.minibatch_size=512"], "agent.hparams.minibatch_size=512: expected an integer in [1, 256]"),
    (["agent.hparams.device=cuda"], "sees no CUDA device here"),
    (["worker_timeout_s=0"], "worker_timeout_s=0.0 must be a number of seconds > 0"),
    (["keep_checkpoints=0"], "keep_checkpoints=0 must be an integer >= 1"),
    (["q_window_episodes=0"], "q_window_episodes=0 must be an integer >= 1"),
    (["env_kwargs.length=oops"], "cannot be built"),
])
def test_bad_spec_fails_before_the_run_directory_exists(sets, needle, tmp_path, capsys):
    args = [TINY, "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    for s in sets:
        args += ["--set", s]
    rc, _, err = cli(capsys, *args)
    assert rc == 2, err
    assert needle in err and err.count("\n") == 1, err  # one line, naming the field
    assert not (tmp_path / "runs").exists()


def test_unreachable_address_fails_in_seconds(tmp_path, capsys):
    rc, _, err = cli(capsys, TINY, "--address", "127.0.0.1:1", "--runs-dir", str(tmp_path / "runs"))
    assert rc == 2 and "--address 127.0.0.1:1: no Ray cluster answers there" in err
    assert not (tmp_path / "runs").exists()


def test_not_an_experiment_file(capsys):
    rc, _, err = cli(capsys, str(DATA.parents[1] / "README.md"))
    assert rc == 2 and "is not an experiment file" in err


def test_resume_refuses_set_and_experiment_file(tmp_path, capsys):
    rc, _, err = cli(capsys, "--resume", str(tmp_path), "--set", "total_steps=10")
    assert rc == 2 and "--resume continues the run exactly as recorded" in err and "--set" in err
    rc, _, err = cli(capsys, TINY, "--resume", str(tmp_path))
    assert rc == 2 and "an experiment file cannot change it" in err


def _exp(**kw):
    base = dict(name="x", env="CartPole-v1", agent=Agent("ppo"), strategy=PBT(population=2, ready_steps=2048),
                total_steps=4096, eval_steps=1024)
    return Experiment(**{**base, **kw})


def test_space_checked_against_the_learners_valid_values():
    with pytest.raises(ValueError, match=r"space.gamma: range \[0.9, 1.5\] leaves the valid values of gamma"):
        _exp(space={"gamma": Uniform(0.9, 1.5)})
    with pytest.raises(ValueError, match=r"space.epochs=Choice\(\['a', 'b'\]\): option 'a': expected an integer"):
        _exp(space={"epochs": Choice(["a", "b"])})
    with pytest.raises(ValueError, match=r"space.epochs: epochs is an integer; use IntUniform"):
        _exp(space={"epochs": Uniform(1, 10)})
    with pytest.raises(ValueError, match=r"agent.hparams and space both set \['lr'\]"):
        _exp(space={"lr": LogUniform(1e-4, 1e-3)}, agent=Agent("ppo", hparams={"lr": 1e-3}))
    with pytest.raises(ValueError, match="space: give a dict"):
        _exp(space=[LogUniform(1e-4, 1e-3)])
    with pytest.raises(ValueError, match="learner 'toy' builds no env"):
        Experiment(name="t", env="CartPole-v1", agent=Agent("toy"), total_steps=100, eval_steps=10)


def test_exploration_that_could_leave_the_valid_range_is_clipped_and_said():
    exp = _exp(space={"gamma": Uniform(0.95, 0.999), "lr": LogUniform(1e-4, 1e-3)})
    (note,) = exp.notes
    assert note.startswith("space.gamma: exploration could carry gamma outside a number in (0, 1]")
    gamma = exp.hparam_space().params["gamma"]
    assert gamma.bounds[1] == 1.0 and exp.hparam_space().params["lr"].bounds is None
    rng = np.random.default_rng(0)
    v = 0.999
    for _ in range(50):
        v, _ = gamma.perturb(v, rng)
        assert 0 < v <= 1.0
    # the note survives --set copies, and the adjusted bounds are what the strategy explores with
    assert exp.with_overrides({"total_steps": "8192"}).notes == [note]
    # integers that could be floored to 0 get a lower bound of 1
    space, notes = check_space({"epochs": integer(1)}, {"epochs": Uniform(1, 4, integer=True)})
    assert space["epochs"].bounds == (1.0, math.inf) and notes
    space, notes = check_space({"gae_lambda": unit()}, {"gae_lambda": Uniform(0.9, 0.99, bounds=(0.5, 1.0))})
    assert notes == []  # already inside


def test_fire_evaluators_that_can_never_pass_the_binomial_test_are_said():
    exp = _exp(strategy=FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=2048, max_eval_steps=4096),
               total_steps=8192)
    (note,) = exp.notes
    assert note.startswith("strategy.max_eval_steps=4096: evaluators measure Q every eval_steps=1024, so at most "
                           "5 points before they stop, but the binomial test needs 7")
    assert "raise max_eval_steps to >= 6144" in note
    ok = _exp(strategy=FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=2048, max_eval_steps=6144),
              total_steps=8192)
    assert ok.notes == []  # 7 points: possible


RAISING = '''
import gymnasium as gym
import numpy as np
from rlpop.envs import register_env

class {name}(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {{}}

    def step(self, action):
        {body}

register_env("{name}-v0", {name}, max_episode_steps=50)

from rlpop.experiment import PBT, Agent, Experiment
from rlpop.hparams import LogUniform

experiment = Experiment(
    name="bad", env="{name}-v0",
    agent=Agent("ppo", hparams={{"rollout_steps": 64, "envs_per_actor": 2, "epochs": 1, "minibatch_size": 32}}),
    space={{"lr": LogUniform(1e-4, 1e-3)}}, strategy=PBT(population=2, ready_steps=128),
    total_steps=256, eval_steps=64)
'''


@pytest.mark.parametrize("name, body, needle", [
    ("Exploding", 'raise RuntimeError("boom: this env always fails")', "boom: this env always fails"),
    ("NaNReward", "return np.zeros(2, np.float32), float('nan'), False, False, {}",
     "env 'NaNReward-v0' returned a non-finite reward (NaN or inf)"),
], ids=["raises", "nan-reward"])
def test_a_run_whose_members_all_fail_exits_non_zero_and_says_why(name, body, needle, tmp_path, capsys):
    exp = tmp_path / f"{name.lower()}.py"
    exp.write_text(RAISING.format(name=name, body=body))
    rc, out, err = cli(capsys, str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert rc == 1, out + err
    assert "every member failed and was dropped" in err and needle in err
    # each failure on the console as it happened: rebuilt once, then dropped, per member
    assert err.count("rebuilt from the last checkpoint") == 2 and err.count("dropped from the population") == 2
    assert "best member: none" in out and "done:" not in out


DIVERGING = '''
from rlpop.agents.base import DIVERGED, TrainResult
from rlpop.toy import NoisyQuadratic


class DivergesAtHighLr(NoisyQuadratic):
    """The toy, except that a learning rate above 1 "diverges" (reports a non-finite loss)."""

    def train(self, steps):
        if self.get_hparams()["lr"] > 1.0:
            return TrainResult(steps, failed=f"{DIVERGED}: non-finite loss after an update")
        return super().train(steps)
'''


def diverging_pbt(tmp_path, module: str = "div_mod") -> Experiment:
    """PBT of 4 toy-like members, one of which (lr 2.0 at seed 3) diverges; its module is put on sys.path (the
    caller removes ``tmp_path`` from it)."""
    (tmp_path / f"{module}.py").write_text(DIVERGING)
    sys.path.insert(0, str(tmp_path))
    return Experiment(name="div", env=None, agent=Agent(f"{module}:DivergesAtHighLr"),
                      space={"lr": Choice([0.05, 0.1, 2.0])}, strategy=PBT(population=4, ready_steps=50),
                      total_steps=100, eval_steps=10, seed=3)


def test_a_diverged_member_is_replaced_by_a_copy_of_the_best(tmp_path):
    exp = diverging_pbt(tmp_path)
    try:
        from rlpop.backends.inline import InlineBackend
        from rlpop.controller import Controller
        from rlpop.events import WorkerFailed
        from rlpop.store import RunDir

        lines, failures = [], []
        ctl = Controller(exp, RunDir.create(tmp_path / "runs", "div"), InlineBackend())
        ctl.subscribe(lambda e: isinstance(e, WorkerFailed) and (lines.append(e.text), failures.append(e)),
                      replace_console=True)
        hps = [r.hparams["lr"] for r in ctl.records.values()]
        assert 2.0 in hps and min(hps) < 1.0  # this seed draws one diverging member and healthy ones
        ctl.start()
        ctl.step_round()  # round 1: nobody has a Q yet, the diverging member cannot copy: rebuilt
        ctl.step_round()
        replaced = [ln for ln in lines if "replaced by a copy of" in ln]
        assert replaced, lines
        assert "diverged: non-finite loss" in replaced[0]
        victim = next(f.worker for f in failures if f.action == "replaced")
        assert ctl.records[victim].hparams["lr"] < 1.0 and ctl.records[victim].alive
        ctl.backend.close()
    finally:
        sys.path.remove(str(tmp_path))


def run_own_learner(tmp_path, capsys, module: str, source: str, learner: str, strategy: str, total_steps: int):
    """Run, through the CLI, a toy-like learner ``module:learner`` written to ``tmp_path`` (on sys.path meanwhile),
    over lr in [0.05, 0.5] with ``strategy`` (source text) and eval_steps 10; returns (rc, stdout, stderr)."""
    (tmp_path / f"{module}.py").write_text(source)
    exp = tmp_path / f"{module}_exp.py"
    exp.write_text("from rlpop.experiment import FIRE, PBT, RandomSearch, Agent, Experiment\n"
                   "from rlpop.hparams import LogUniform\n"
                   f"experiment = Experiment(name='{module}', env=None, agent=Agent('{module}:{learner}'), "
                   f"space={{'lr': LogUniform(0.05, 0.5)}}, strategy={strategy}, total_steps={total_steps}, "
                   "eval_steps=10)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        return cli(capsys, str(exp), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    finally:
        sys.path.remove(str(tmp_path))


KEEPS_DIVERGING = '''
from rlpop.agents.base import DIVERGED, TrainResult
from rlpop.toy import NoisyQuadratic


class DivergesFromItsThirdCall(NoisyQuadratic):
    """The toy, except that every learner "diverges" from its third train call on, whatever state it is given."""

    calls = 0

    def train(self, steps):
        self.calls += 1
        if self.calls >= 3:
            return TrainResult(steps, failed=f"{DIVERGED}: non-finite loss after an update")
        return super().train(steps)
'''


@pytest.mark.parametrize("method", ["pbt", "fire"])
def test_members_that_keep_diverging_end_the_run_with_a_clear_error(method, tmp_path, capsys):
    """Every member diverges from round 3 on: each is replaced by a peer's copy once, diverges again at once and is
    dropped; the run ends (it looped forever before: a copy cannot cure it) non-zero, saying why."""
    strategy = ("PBT(population=4, ready_steps=50)" if method == "pbt" else
                "FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=50, max_eval_steps=100)")
    rc, out, err = run_own_learner(tmp_path, capsys, "keeps_div", KEEPS_DIVERGING, "DivergesFromItsThirdCall",
                                   strategy, 200)
    assert rc == 1, out + err
    assert "every member failed and was dropped" in err
    assert err.count("replaced by a copy of") >= 1
    assert "of its replacement by a copy; dropped from the population" in err
    (run,) = (tmp_path / "runs").iterdir()
    rounds = [json.loads(x)["round"] for x in (run / "decisions.jsonl").read_text().splitlines()]
    assert max(rounds) <= 6  # over within a few rounds of the first divergence


GENERATOR_STATE = '''
import numpy as np

from rlpop.toy import NoisyQuadratic


class KeepsAGenerator(NoisyQuadratic):
    """The toy, with a numpy Generator (not plain data) in its state."""

    def get_state(self):
        return {**super().get_state(), "extra_rng": np.random.default_rng(0)}
'''


def test_a_learner_state_that_is_not_plain_data_is_refused_at_its_first_checkpoint(tmp_path, capsys):
    """It used to be checkpointed without a word, then every checkpoint was refused on --resume."""
    rc, out, err = run_own_learner(tmp_path, capsys, "gen_mod", GENERATOR_STATE, "KeepsAGenerator",
                                   "PBT(population=2, ready_steps=20)", 100)
    assert rc != 0, out + err
    line = [ln for ln in err.splitlines() if "cannot be checkpointed" in ln]
    assert line and "['extra_rng'] (a numpy.random._generator.Generator)" in line[0], err
    assert "bit_generator.state" in line[0]
    (run,) = (tmp_path / "runs").iterdir()
    # refused before any state was written (round 0's checkpoint holds no learner state yet)
    assert [p.name for p in run.glob("checkpoints/*.pt")] in ([], ["ckpt-00000000.pt"])


NAN_RETURNS = '''
import math

from rlpop.toy import NoisyQuadratic


class ReportsNaN(NoisyQuadratic):
    """The toy, reporting NaN episode returns."""

    def train(self, steps):
        res = super().train(steps)
        res.episode_returns = [math.nan]
        return res
'''


def test_a_run_whose_q_is_never_finite_exits_non_zero_and_says_why(tmp_path, capsys):
    rc, out, err = run_own_learner(tmp_path, capsys, "nan_mod", NAN_RETURNS, "ReportsNaN",
                                   "RandomSearch(population=2)", 40)
    assert rc == 1, out + err
    assert "no member reported a finite Q (mean episode return) in 4 rounds" in err and "eval_steps" in err


def test_choice_notes_high_learning_rates_and_single_options():
    from rlpop.hparams import Choice

    exp = _exp(space={"lr": Choice([3e-4, 10])})
    assert any("Choice([0.0003, 10]): option(s) [10] above 1" in n for n in exp.notes), exp.notes
    exp = _exp(space={"lr": Choice([2e-4])})
    assert any("has one option: it never changes" in n for n in exp.notes), exp.notes


def test_end_of_run_summary(tmp_path, capsys):
    rc, out, err = cli(capsys, str(DATA / "tiny_pbt.py"), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert rc == 0, err
    assert "best member: w" in out and "Q=" in out and "exploits" in out
    runs = tmp_path / 'runs'
    assert f"next: rlpop evaluate {runs}" in out and f"rlpop export {runs}" in out
    assert f"rlpop plot {runs}" in out and f"rlpop lineage {runs}" in out
    assert "(retrains it)" in out  # replay is not how to play the agent


def test_nonfinite_inputs_fail_only_their_member():
    from rlpop.agents.base import TrainResult
    from rlpop.agents.batched_base import BatchedLearner

    T, K, N = 3, 3, 2
    ro = {"obs": np.zeros((T, K, N, 4), np.float32), "next_obs": np.zeros((T, K, N, 4), np.float32),
          "rewards": np.zeros((T, K, N), np.float32), "actions": np.zeros((T, K, N), np.int64),
          "logprobs": np.zeros((T, K, N), np.float32), "terminated": np.zeros((T, K, N), bool),
          "truncated": np.zeros((T, K, N), bool), "valid": None, "episode_returns": [[1.0], [2.0], [3.0]],
          "stats": (np.zeros((K, 4)), np.ones((K, 4)))}
    ro["obs"][1, 1, 0, 2] = np.nan
    fake = type("B", (), {"env_id": "Some-v0"})()
    out = {m: TrainResult(0) for m in (5, 6, 7)}
    kept = BatchedLearner._drop_failed(fake, [5, 6, 7], out, ro)
    assert kept == [5, 7] and ro["obs"].shape[1] == 2 and ro["episode_returns"] == [[1.0], [3.0]]
    assert ro["stats"][0].shape == (2, 4)
    assert out[6].failed == "env 'Some-v0' returned a non-finite observation (NaN or inf); fix the env or wrap it"
    assert out[5].failed is None and out[7].failed is None


def test_a_learning_rate_above_one_is_said_once(tmp_path, capsys):
    exp = _exp(space={"lr": LogUniform(5, 20)})
    assert exp.notes == ["space.lr: range [5, 20] reaches above 1: those members will most likely diverge or "
                         "collapse (typical: 0.0003)"]
    rc, _, err = cli(capsys, TINY, "--set", "agent.hparams.lr=5", "--dry-run")
    assert rc == 0 and err.count("note: agent.hparams.lr=5 is above 1") == 1


def test_one_writer_per_run_directory(tmp_path, capsys):
    import json
    import subprocess

    rc, out, err = cli(capsys, TINY, "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert rc == 0, err
    (run,) = list((tmp_path / "runs").iterdir())
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "finished": False}))  # as if still running
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rlpop.store import RunDir; "
                               "RunDir(sys.argv[1]).acquire_lock(); print('locked', flush=True); time.sleep(120)",
                               str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, out, err = cli(capsys, "--resume", str(run), "--quiet")
        assert rc == 2 and f"is in use by pid {holder.pid}" in err and f"kill {holder.pid}" in err, err
    finally:
        holder.kill()
        holder.wait()
