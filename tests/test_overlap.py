"""The batched learners' overlap (agents/batched_base.py): with EnvPool, one half of the stepped members'
policy forward runs while the other half's envs step -- and nothing a member computes depends on it."""
import pytest
import torch

from rlpop.agents.batched_ppo import BatchedPPO
from rlpop.agents.batched_vmpo import BatchedVMPO
from rlpop.agents.envbank import envpool_available

pytestmark = pytest.mark.skipif(not envpool_available("Hopper-v5"), reason="EnvPool with Hopper-v5 not installed")

HP = {"rollout_steps": 64, "minibatch_size": 32, "epochs": 2, "envs_per_actor": 2}
LRS = [1e-3, 3e-4, 5e-4, 2e-3, 1e-4]


def _learner(cls, overlap: bool):
    return cls("Hopper-v5", [{**HP, "lr": lr, "overlap": overlap} for lr in LRS], [11, 12, 13, 14, 15],
               update_threads=2)


@pytest.mark.parametrize("cls", [BatchedPPO, BatchedVMPO])
def test_overlap_changes_no_members_numbers(cls):
    out = {}
    for overlap in (False, True):
        L = _learner(cls, overlap)
        try:
            assert len(L.collect_groups(5)) == (2 if overlap else 1)
            res = [L.train([0, 1, 2, 3, 4], 192), L.train([1, 2, 4], 128), L.train([3], 64)]
            out[overlap] = (L.net.flat.clone(), [[r[m].episode_returns for m in sorted(r)] for r in res],
                            [[r[m].metrics for m in sorted(r)] for r in res])
        finally:
            L.close()
    assert torch.equal(out[False][0], out[True][0])
    assert out[False][1] == out[True][1]
    assert out[False][2] == out[True][2]
    assert any(any(r) for r in out[True][1][0])  # episodes ended: the returns compared are real ones


def test_one_half_acts_while_the_other_halfs_envs_step():
    """Between sending a half's actions and receiving its step, the other half is acted for and sent."""
    L = _learner(BatchedPPO, True)
    calls = []
    send, recv = L.bank.send, L.bank.recv
    L.bank.send = lambda members, actions: (calls.append(("send", tuple(members))), send(members, actions))[1]
    L.bank.recv = lambda members: (calls.append(("recv", tuple(members))), recv(members))[1]
    try:
        L.collect([0, 1, 2, 3, 4], 8)
    finally:
        L.close()
    a, b = (0, 1), (2, 3, 4)
    assert calls[:3] == [("send", a), ("send", b), ("recv", a)]
    in_flight = set()
    overlapped = 0
    for kind, g in calls:
        if kind == "send":
            overlapped += bool(in_flight - {g})  # the other half's envs are stepping while this half was acted for
            in_flight.add(g)
        else:
            in_flight.discard(g)
    assert overlapped == 8 * 2 - 1  # every send but the very first
