"""A member's run depends only on its seed, slot and hyperparameters: not on which members share its batch, how
many there are, which of them are stepped, or what another member's env does (rlpop.streams, issue 22).

Exact equality throughout: the batched engine gives each member the same arithmetic as alone."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from rlpop import streams
from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.batched_vmpo import BatchedVMPO
from rlpop.agents.envbank import envpool_available

PPO_HP = {"rollout_steps": 128, "envs_per_actor": 2, "epochs": 2, "minibatch_size": 64}
VMPO_HP = {"rollout_steps": 128, "envs_per_actor": 2, "minibatch_size": 128}
#: per-member hparams (the second member has more epochs: the others sit out its last iterations)
PPO_MEMBERS = [{"lr": 3e-4}, {"lr": 1e-3, "epochs": 3, "clip": 0.3}, {"lr": 5e-4, "max_grad_norm": None},
               {"lr": 2e-4}]
VMPO_MEMBERS = [{"lr": 1e-4}, {"lr": 3e-4, "eps_eta": 0.02}, {"lr": 2e-4}, {"lr": 1e-4, "gamma": 0.95}]
ENVS = ["Pendulum-v1", "CartPole-v1"] + (["Hopper-v5"] if envpool_available("Hopper-v5") else [])


def _learner(algo, env, members, seeds, threads=2):
    cls, base, hps = (BatchedPPO, PPO_HP, PPO_MEMBERS) if algo == "ppo" else (BatchedVMPO, VMPO_HP, VMPO_MEMBERS)
    return cls(env, [{**base, **hps[m]} for m in members], seeds, update_threads=threads)


def _run(algo, env, members, schedule, threads=2, learner=None):
    """Train the batch ``members`` (indices into the hparam table; member m has seed 100 + m) on ``schedule``
    (a list of sets of positions trained together); return each member's weights and episode returns."""
    L = learner or _learner(algo, env, members, [100 + m for m in members], threads)
    returns = {m: [] for m in members}
    try:
        for step in schedule:
            res = L.train(step, 128)
            for pos, r in res.items():
                assert r.failed is None, r.failed
                returns[members[pos]].append(list(r.episode_returns))
        return {m: L.net.flat[i].clone() for i, m in enumerate(members)}, returns, L
    finally:
        L.close()


@pytest.mark.parametrize("algo", ["ppo", "vmpo"])
@pytest.mark.parametrize("env", ENVS)
def test_a_member_runs_the_same_in_any_batch(algo, env):
    """Member 1 alone, in a batch of four, and in a batch of two whose other member trains on other rounds."""
    w_all, r_all, _ = _run(algo, env, [0, 1, 2, 3], [[0, 1, 2, 3]] * 4)
    w_one, r_one, _ = _run(algo, env, [1], [[0]] * 4, threads=1)
    w_two, r_two, _ = _run(algo, env, [2, 1], [[0, 1], [1], [0], [0, 1], [1]])
    for w, r in ((w_one, r_one), (w_two, r_two)):
        assert torch.equal(w[1], w_all[1])
        assert r[1] == r_all[1]
    assert any(r_all[1])  # episodes finished: the returns compared are real ones
    assert not torch.equal(w_all[0], w_all[1])


def test_a_copy_gives_the_destination_a_fresh_stream_of_its_own():
    """After a copy the destination draws from its own next stream epoch (rlpop.streams), never the source's."""
    L = _learner("ppo", "Pendulum-v1", [0, 1], [100, 101])
    try:
        L.train([0, 1], 128)
        src_noise = streams.generator_state(L.generators[0])
        L.copy_member(0, 1)
        assert torch.equal(L.net.flat[0], L.net.flat[1])
        assert L.epochs == [0, 1]
        fresh = streams.stream_seed(101, 1)
        assert torch.equal(streams.generator_state(L.generators[1]),
                           streams.generator_state(streams.action_generator(fresh)))
        assert not torch.equal(streams.generator_state(L.generators[1]), src_noise)
        assert L.rngs[1].bit_generator.state == streams.minibatch_rng(fresh).bit_generator.state
        assert L.bank.state(1) == {"seed": fresh, "resets": 1}  # its envs restarted from that stream
        assert L.bank.state(0) == {"seed": 100, "resets": 1}     # the source's envs untouched
        assert L.get_state(1)[streams.KEY]["epoch"] == 1
    finally:
        L.close()


def test_a_checkpointed_member_continues_its_streams():
    """get_state -> a new learner's set_state: the same next minibatch orders and action noise, and the envs
    start again with seeds the member has not used."""
    a = _learner("ppo", "Pendulum-v1", [0, 1], [100, 101])
    b = _learner("ppo", "Pendulum-v1", [2, 1], [102, 101])
    try:
        a.train([0, 1], 256)
        state = a.get_state(1)
        b.set_state(1, state)
        assert torch.equal(streams.generator_state(b.generators[1]), streams.generator_state(a.generators[1]))
        assert b.rngs[1].bit_generator.state == a.rngs[1].bit_generator.state
        # what both draw next is the same
        assert torch.equal(torch.randn(5, generator=a.generators[1]), torch.randn(5, generator=b.generators[1]))
        assert np.array_equal(a.rngs[1].permutation(10), b.rngs[1].permutation(10))
    finally:
        a.close()
        b.close()


class NaNAt(gym.Wrapper):
    """The env returns a NaN observation (``what="obs"``) or reward at its ``at``-th step."""

    def __init__(self, env, at: int, what: str):
        super().__init__(env)
        self.t, self.at, self.what = 0, at, what

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            if self.what == "obs":
                obs = np.full_like(obs, np.nan)
            else:
                r = float("nan")
        return obs, r, te, tr, info


@pytest.mark.parametrize("algo", ["ppo", "vmpo"])
@pytest.mark.parametrize("env", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("what", ["obs", "reward"])
def test_a_members_nan_fails_it_alone(algo, env, what):
    """Member 1's env returns NaN at its 40th step (through the real collection and update): member 1 fails,
    members 0 and 2 train on exactly as they would without it."""
    members = [0, 1, 2]
    L = _learner(algo, env, members, [100 + m for m in members])
    try:
        L.bank.observe([0, 1, 2])
        venv = L.bank.envs[1]
        venv.envs[0] = NaNAt(venv.envs[0], 40, what)
        res = L.train([0, 1, 2], 128)
        assert res[1].failed and "non-finite" in res[1].failed
        assert res[0].failed is None and res[2].failed is None
        # the others go on as if member 1 had never been there
        ref, ref_returns, _ = _run(algo, env, [0, 2], [[0, 1]])
        assert torch.equal(L.net.flat[0], ref[0]) and torch.equal(L.net.flat[2], ref[2])
        assert list(res[0].episode_returns) == ref_returns[0][0]
    finally:
        L.close()


def _rs(env, population=4, shard_size=0):
    from rlpop.experiment import Agent, Experiment, RandomSearch
    from rlpop.hparams import LogUniform

    return Experiment(name="layout", env=env, agent=Agent("ppo", hparams=dict(PPO_HP)),
                      space={"lr": LogUniform(1e-4, 3e-3)}, strategy=RandomSearch(population=population),
                      total_steps=1024, eval_steps=256, shard_size=shard_size)


def _curves(exp, backend, tmp_path, name):
    import pandas as pd

    from rlpop.run import execute
    from rlpop.store import RunDir

    run = RunDir.create(tmp_path, name)
    assert execute(exp, run, backend, quiet=True) == 0
    df = pd.read_csv(run.path / "curves.csv")
    return {w: list(zip(g["step"], map(repr, g["q"]), g["hparams"])) for w, g in df.groupby("worker")}


@pytest.mark.parametrize("env", ["Pendulum-v1"] + (["Hopper-v5"] if envpool_available("Hopper-v5") else []))
def test_random_search_curves_do_not_depend_on_the_layout(env, tmp_path, ray_cluster):
    """RS through the controller: members 0 and 1 have the same Q curves in one shard of four, in shards of one,
    in a population of two, and as Ray actors (shards of two)."""
    ref = _curves(_rs(env), "inline", tmp_path, "one_shard")
    assert len(ref) == 4 and all(len(c) == 4 for c in ref.values())
    assert all(q != "nan" for c in ref.values() for _, q, _ in c[1:])  # episodes finished: real Q values
    for name, exp, backend in (("shards_of_one", _rs(env, shard_size=1), "inline"),
                               ("population_2", _rs(env, population=2), "inline"),
                               ("ray", _rs(env, shard_size=2), "ray")):
        got = _curves(exp, backend, tmp_path, name)
        for w in (0, 1):
            assert got[w] == ref[w], (name, w)


def test_a_batched_members_replay_reproduces_its_q_curve_through_its_copies(tmp_path):
    """PBT over batched PPO (copies every ready interval); the replay of the best final member follows its lineage
    through the copies and gives the same Q at every lineage step."""
    import json

    import pandas as pd

    from rlpop.experiment import PBT, Agent, Experiment
    from rlpop.hparams import LogUniform
    from rlpop.lineage import trace_schedule
    from rlpop.replay import main as replay_main
    from rlpop.run import execute
    from rlpop.store import RunDir

    exp_file = tmp_path / "pbt.py"
    exp_file.write_text(
        "from rlpop.experiment import PBT, Agent, Experiment\n"
        "from rlpop.hparams import LogUniform\n"
        "experiment = Experiment(name='pbt', env='Pendulum-v1', agent=Agent('ppo', hparams="
        f"{PPO_HP!r}), space={{'lr': LogUniform(1e-4, 3e-3)}}, strategy=PBT(population=4, ready_steps=256), "
        "total_steps=1536, eval_steps=256)\n")
    from rlpop.run import load_experiment

    exp = load_experiment(exp_file)
    run = RunDir.create(tmp_path / "runs", "pbt")
    import shutil

    shutil.copy(exp_file, run.path / "experiment.py")
    from rlpop.run import run_config

    run.write_config(run_config(exp, "inline", None, {}, run.path / "experiment.py"))
    assert execute(exp, run, "inline", quiet=True) == 0
    lin = trace_schedule(run.path)
    assert (lin["via"] != "").any(), "the best member's lineage has a copy"
    assert replay_main([str(run.path), "--runs-dir", str(tmp_path / "replays"), "--quiet"]) == 0
    (rdir,) = (tmp_path / "replays").glob("*_replay-*")
    rows = pd.read_csv(rdir / "curves.csv")
    assert list(rows["step"]) == list(lin["lineage_step"])
    np.testing.assert_array_equal(rows["q"].to_numpy(), lin["q"].to_numpy())  # exactly (NaN: no episode ended)
    assert np.isfinite(rows["q"].to_numpy()).sum() >= 3
    follows = [json.loads(x) for x in (rdir / "decisions.jsonl").read_text().splitlines()]
    assert any(d["kind"] == "follow_copy" for d in follows)


@pytest.mark.skipif(not envpool_available("Hopper-v5"), reason="EnvPool does not provide Hopper-v5 here")
def test_fire_evaluators_do_not_touch_a_p1_members_episodes(tmp_path):
    """FIRE on Hopper-v5 (EnvPool): an evaluator assigned and stopped between rounds leaves a P1 member's run --
    its running episodes included -- bitwise as it is without them."""
    from rlpop.backends import make_backend
    from rlpop.controller import Controller
    from rlpop.decisions import AssignEvaluator, StopEvaluator
    from rlpop.experiment import FIRE, Agent, Experiment
    from rlpop.hparams import LogUniform
    from rlpop.store import RunDir

    exp = Experiment(name="fire", env="Hopper-v5", agent=Agent("ppo", hparams=dict(PPO_HP, env_backend="envpool")),
                     space={"lr": LogUniform(1e-4, 3e-3)},
                     # no ready interval and no evaluation of P2 within the test: only the test's decisions
                     strategy=FIRE(subpops=2, subpop_size=2, evaluators=1, ready_steps=100_000,
                                   max_eval_steps=50_000, min_steps_before_eval=(90_000,)),
                     total_steps=100_000, eval_steps=128)

    def run(with_evaluator):
        be = make_backend("inline")
        ctl = Controller(exp, RunDir.create(tmp_path, "fire"), be)
        ctl.start()
        try:
            out = []
            for r in range(4):
                ctl.step_round()
                out.append((ctl.records[0].q, be.where[0].learner._ep_len[0].copy()))
                if with_evaluator and r == 0:
                    ctl.apply(AssignEvaluator(evaluator=4, parent=2, child=0))
                if with_evaluator and r == 2:
                    ctl.apply(StopEvaluator(evaluator=4, reason="test"))
            return out, be.where[0].learner.net.flat[0].clone()
        finally:
            be.close()

    plain, w_plain = run(False)
    busy, w_busy = run(True)
    assert torch.equal(w_plain, w_busy)
    assert [q for q, _ in plain] == [q for q, _ in busy]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(plain, busy))
    # episodes were in progress when the evaluator was assigned (after round 1) and stopped (after round 3)
    assert plain[0][1].max() > 0 and plain[2][1].max() > 0


@pytest.mark.parametrize("learner", ["ppo", "vmpo"])
def test_max_grad_norm_has_one_meaning(learner):
    """None: no clipping (the learners train with it, above); 0 or negative: refused at spec time, naming the fix."""
    from rlpop.experiment import Agent, Experiment, RandomSearch
    from rlpop.hparams import Choice

    def exp(**kw):
        return Experiment(name="g", env="Pendulum-v1", strategy=RandomSearch(population=2), total_steps=512,
                          eval_steps=256, **kw)

    exp(agent=Agent(learner, hparams={"max_grad_norm": None}))
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match=rf"agent.hparams.max_grad_norm={bad!r}: expected a number > 0 "
                                             r"\(or None: no clipping\)"):
            exp(agent=Agent(learner, hparams={"max_grad_norm": bad}))
    with pytest.raises(ValueError, match=r"space.max_grad_norm=Choice\(\[0, 0.5\]\): option 0"):
        exp(agent=Agent(learner), space={"max_grad_norm": Choice([0, 0.5])})
