"""The batched learners' overlap (agents/batched_base.py): one half of a shard's members collects while the
other half updates in a background thread -- and nothing a member computes depends on it."""
import threading

import torch

from rlpop.agents.batched_ppo import BatchedPPO

HP = {"rollout_steps": 64, "minibatch_size": 32, "epochs": 2, "envs_per_actor": 2}
LRS = [1e-3, 3e-4, 5e-4, 2e-3]


def _learner(overlap: bool) -> BatchedPPO:
    return BatchedPPO("Pendulum-v1", [{**HP, "lr": lr, "overlap": overlap} for lr in LRS], [11, 12, 13, 14],
                      update_threads=2)


def test_overlap_changes_no_members_numbers():
    out = {}
    for overlap in (False, True):
        L = _learner(overlap)
        try:
            assert len(L.overlap_groups(range(4))) == (2 if overlap else 1)
            res = [L.train([0, 1, 2, 3], 192), L.train([1, 2], 128), L.train([0, 1, 2, 3], 64)]
            out[overlap] = (L.net.flat.clone(), [[r[m].episode_returns for m in sorted(r)] for r in res],
                            [[r[m].metrics for m in sorted(r)] for r in res])
        finally:
            L.close()
    assert torch.equal(out[False][0], out[True][0])
    assert out[False][1] == out[True][1]
    assert out[False][2] == out[True][2]


def test_one_half_updates_while_the_other_collects():
    """Group A's update waits for group B's collection to start: it can only finish if it runs beside it."""
    L = _learner(True)
    collect, learn = L.collect, L.learn
    b_collecting = threading.Event()
    seen = []

    def collect_spy(members, steps):
        if list(members) == [2, 3]:
            b_collecting.set()
        return collect(members, steps)

    def learn_spy(members, ro):
        if list(members) == [0, 1] and not seen:
            seen.append((threading.current_thread().name, b_collecting.wait(timeout=120)))
        return learn(members, ro)

    L.collect, L.learn = collect_spy, learn_spy
    try:
        res = L.train([0, 1, 2, 3], 128)
    finally:
        L.close()
    assert seen and seen[0][0].startswith("rlpop-overlap") and seen[0][1], seen
    assert all(r.steps == 128 and r.failed is None for r in res.values())
