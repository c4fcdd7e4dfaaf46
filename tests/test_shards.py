"""Shards in the backends: PPO and V-MPO populations run batched (their only engine) (one shard inline; shards as Ray actors),
other learners per member; copies within a shard are slice copies, across shards through the object store."""
import pytest
import torch

from rlpop.backends import make_backend
from rlpop.backends.base import WorkerSpec
from rlpop.controller import Controller
from rlpop.decisions import Exploit, Explore
from rlpop.experiment import PBT, Agent, Experiment, RandomSearch, Single
from rlpop.hparams import LogUniform
from rlpop.shard import BatchShard, MemberShard, split
from rlpop.store import RunDir


def ppo_pbt(population=4, **kw):
    # ready after 4 rounds: the tests' own copies are the only ones in their first rounds
    return Experiment(name="ex", env="Corridor-v0",
                      agent=Agent("ppo", hparams={"rollout_steps": 256, "envs_per_actor": 2, "epochs": 2}),
                      space={"lr": LogUniform(1e-4, 3e-3)}, strategy=PBT(population=population, ready_steps=1024),
                      total_steps=2048, eval_steps=256, **kw)


def test_split_keeps_ids_in_order_and_sizes_even():
    specs = [WorkerSpec(i, "ppo", "Corridor-v0", {}, i) for i in range(7)]
    groups = split(specs, 3)
    assert [[s.id for s in g] for g in groups] == [[0, 1, 2], [3, 4], [5, 6]]
    assert len(split(specs, 20)) == 7


def test_inline_default_is_one_batched_shard_for_ppo_and_members_for_the_toy(tmp_path):
    be = make_backend("inline")
    ctl = Controller(ppo_pbt(3), RunDir.create(tmp_path, "a"), be)
    ctl.start()
    try:
        assert len(be.shards) == 1 and isinstance(be.shards[0], BatchShard) and be.shards[0].ids == [0, 1, 2]
    finally:
        be.close()
    toy = Experiment(name="toy", env=None, agent=Agent("toy"), space={"lr": LogUniform(1e-3, 1.0)},
                     strategy=RandomSearch(population=2), total_steps=100, eval_steps=50)
    be = make_backend("inline")
    Controller(toy, RunDir.create(tmp_path, "b"), be).start()
    try:
        assert len(be.shards) == 2 and all(isinstance(s, MemberShard) for s in be.shards)
    finally:
        be.close()
    single = Experiment(name="one", env="Corridor-v0", agent=Agent("ppo", hparams={"rollout_steps": 128}),
                        strategy=Single(), total_steps=256, eval_steps=128)
    be = make_backend("inline")
    Controller(single, RunDir.create(tmp_path, "c"), be).start()
    try:  # a single run is a population of one
        assert len(be.shards) == 1 and isinstance(be.shards[0], BatchShard) and be.shards[0].ids == [0]
    finally:
        be.close()


@pytest.mark.parametrize("learner", ["ppo", "vmpo"])
def test_the_member_engine_is_refused_for_a_batched_learner_in_one_line(learner):
    with pytest.raises(ValueError) as err:
        Experiment(name="t", env="Corridor-v0", agent=Agent(learner), strategy=RandomSearch(population=2),
                   total_steps=100, eval_steps=50, engine="member")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("engine='member'") and repr(learner) in msg
    assert "drop engine='member'" in msg
    with pytest.raises(ValueError, match="engine='member'"):
        make_backend("inline", engine="member").start([WorkerSpec(0, learner, "Corridor-v0", {}, 0)])
    from rlpop.agents import make_learner

    with pytest.raises(ValueError, match=r"batched learner: build rlpop\.agents\.batched_.*a population of one"):
        make_learner(learner, "Corridor-v0", {}, 0)  # a Worker cannot hold one


def test_batched_engine_is_refused_for_a_learner_without_one():
    with pytest.raises(ValueError, match="engine='batched'.*toy"):
        Experiment(name="t", env=None, agent=Agent("toy"), strategy=RandomSearch(population=2),
                   total_steps=100, eval_steps=50, engine="batched")
    with pytest.raises(ValueError, match="engine="):
        ppo_pbt(engine="gpu")


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_copies_within_and_across_shards(backend, tmp_path, request):
    if backend == "ray":
        request.getfixturevalue("ray_cluster")
    be = make_backend(backend, shard_size=2)  # 3 members: shards {0, 1} and {2}
    ctl = Controller(ppo_pbt(3), RunDir.create(tmp_path, "x"), be)
    ctl.start()
    try:
        ctl.step_round()
        before = be.get_states([0, 1, 2])
        ctl.apply(Exploit(src=1, dst=0))   # within a shard: a slice copy
        after_first = be.get_states([0])[0]["learner"]
        for k, v in before[1]["learner"]["net"].items():
            assert torch.equal(v, after_first["net"][k]), k
            assert not torch.equal(v, before[0]["learner"]["net"][k]), k
        assert after_first["opt"]["state"][0]["step"] == before[1]["learner"]["opt"]["state"][0]["step"]
        ctl.apply(Exploit(src=2, dst=1))   # across shards
        ctl.apply(Explore(dst=1, hparams={"lr": 2.5e-3}, changes={"lr": "x"}))
        states = be.get_states([0, 1, 2])
        for k, v in states[2]["learner"]["net"].items():
            assert torch.equal(v, states[1]["learner"]["net"][k]), k
        assert states[1]["learner"]["hparams"]["lr"] == pytest.approx(2.5e-3)
        ctl.step_round()
        after = be.get_states([1])[1]["learner"]
        assert after["opt"]["param_groups"][0]["lr"] == pytest.approx(2.5e-3)
        assert [r.steps for r in ctl.records.values()] == [512, 512, 512]
    finally:
        be.close()


def test_a_long_round_reports_progress_after_every_batched_update(tmp_path):
    from rlpop.progress import round_progress_line

    be = make_backend("inline")
    ctl = Controller(ppo_pbt(2), RunDir.create(tmp_path, "p"), be)
    seen = []
    be.on_progress = seen.append
    ctl.start()
    try:
        ctl.step_round()
    finally:
        be.close()
    # eval_steps 256 = one rollout of 128 steps x 2 envs per member, two members: collection reports
    # every 64 steps of each env, then the update
    assert [(p["steps"], p["target"]) for p in seen] == [(256, 512), (512, 512), (512, 512)]
    line = round_progress_line(ctl.round_finished(), {**seen[0], "steps": 256})
    assert "env steps 256 / 512" in line and "SPS" in line and "ETA ~" in line
    from rlpop.progress import duration

    assert [duration(x) for x in (45, 750, 3 * 3600, 5 * 86400, 8.8e7)] == ["45s", "12.5min", "3.0h", "5.0d", "2.8y"]
