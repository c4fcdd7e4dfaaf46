"""Env banks: EnvPool's dynamics match gymnasium's, its next-step autoreset is handled (final observations kept,
reset slots marked), the gymnasium bank keeps true final observations, and on every bank a member's envs are its
own: the same whoever else is banked or stepped, reset alone, seeded from its own stream (rlpop.streams)."""
import gymnasium as gym
import numpy as np
import pytest

from rlpop.agents.envbank import ENVPOOL_IDS, EnvPoolBank, GymBank, ProcBank, envpool_available, make_bank

needs_envpool = pytest.mark.skipif(not envpool_available("Hopper-v5"), reason="EnvPool is not installed here")


@needs_envpool
@pytest.mark.parametrize("env_id", sorted(ENVPOOL_IDS))
def test_envpool_matches_gymnasium(env_id):
    """Same start (no reset noise), same actions: same observations and rewards."""
    import envpool

    pool = envpool.make(ENVPOOL_IDS[env_id], env_type="gymnasium", num_envs=1, seed=0, reset_noise_scale=0.0)
    env = gym.make(env_id, reset_noise_scale=0.0)
    go, _ = env.reset(seed=0)
    eo, _ = pool.reset()
    rng = np.random.default_rng(0)
    tol = 0.05 if env_id == "Humanoid-v5" else 1e-5  # Humanoid: contact-force terms differ slightly
    np.testing.assert_allclose(eo[0], go, atol=tol)
    for _ in range(200):
        a = rng.uniform(-0.3, 0.3, env.action_space.shape)
        go, gr, gte, gtr, _ = env.step(a)
        eo, er, ete, etr, _ = pool.step(np.asarray([a]))
        np.testing.assert_allclose(eo[0], go, atol=tol)
        assert er[0] == pytest.approx(gr, abs=1e-3)
        assert (bool(ete[0]), bool(etr[0])) == (gte, gtr)
        if gte or gtr:
            break
    pool.close()
    env.close()


@needs_envpool
def test_envpool_bank_keeps_final_observations_and_marks_reset_slots():
    bank = EnvPoolBank("InvertedPendulum-v5", seeds=[0, 1], num_envs=3)
    try:
        obs = bank.observe([0, 1])
        assert obs.shape == (2, 3, 4)
        seen_end = seen_reset = False
        prev_done = np.zeros((2, 3), bool)
        for _ in range(200):
            act = np.full((2, 3, 1), 3.0, np.float32)  # pushes the pole over within a few dozen steps
            st = bank.step([0, 1], act)
            done = st.terminated | st.truncated
            if prev_done.any():
                # the slot after an episode's end is EnvPool's reset: invalid, no reward, a fresh observation
                assert st.valid is not None and not st.valid[prev_done].any()
                assert (st.reward[prev_done] == 0).all() and not done[prev_done].any()
                assert np.abs(st.obs[prev_done]).max() < 0.05  # reset observations are near zero
                seen_reset = True
            if done.any():
                # the step that ended the episode returns the true final observation (pole far over)
                assert np.abs(st.next_obs[done][:, 1]).max() > 0.2
                seen_end = True
            prev_done = done
        assert seen_end and seen_reset
    finally:
        bank.close()


def _banks():
    """(name, factory(seeds, num_envs)) of every bank kind available here, on an env each can step."""
    out = [("gym", lambda seeds, n: GymBank("Hopper-v5", {}, seeds, n)),
           ("procs", lambda seeds, n: ProcBank("Hopper-v5", {}, seeds, n, num_actors=2))]
    if envpool_available("Hopper-v5"):
        out.append(("envpool", lambda seeds, n: EnvPoolBank("Hopper-v5", seeds, n)))
    return out


def _play(bank, members, who, steps, rng):
    """Step ``members`` for ``steps`` steps with random actions; the observations and rewards of ``who``."""
    seen = []
    bank.observe(members)
    for _ in range(steps):
        act = rng.uniform(-1, 1, (len(members), bank.num_envs, 3)).astype(np.float32)
        st = bank.step(members, act)
        i = members.index(who)
        seen.append((st.obs[i].copy(), st.reward[i].copy()))
    return seen


@pytest.mark.parametrize("kind", [k for k, _ in _banks()])
def test_a_members_envs_are_its_own_whoever_else_is_banked_or_stepped(kind):
    """Member with seed 7: the same observations and rewards under the same actions alone, banked with others
    that step beside it, and with others that pause and come back (its running episodes go on)."""
    make = dict(_banks())[kind]
    alone, busy = make([7], 2), make([3, 7, 9], 2)
    try:
        ref = _play(alone, [0], 0, 90, np.random.default_rng(0))
        rng = np.random.default_rng(0)  # the same actions for the member as alone
        acts = [rng.uniform(-1, 1, (1, 2, 3)).astype(np.float32) for _ in range(90)]
        busy.observe([0, 1, 2])
        got = []
        for t, a in enumerate(acts):
            members = [0, 1, 2] if t < 30 else [1] if t < 60 else [1, 2]  # the set of stepped members changes
            full = np.zeros((len(members), 2, 3), np.float32)
            full[members.index(1)] = a[0]
            st = busy.step(members, full)
            got.append((st.obs[members.index(1)].copy(), st.reward[members.index(1)].copy()))
        for (o1, r1), (o2, r2) in zip(ref, got):
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(r1, r2)
    finally:
        alone.close()
        busy.close()


@pytest.mark.parametrize("kind", [k for k, _ in _banks()])
def test_reset_restarts_one_member_from_new_seeds_and_a_checkpoint_continues_them(kind):
    make = dict(_banks())[kind]
    bank = make([3, 7], 2)
    try:
        first = bank.observe([0, 1]).copy()
        assert not np.array_equal(first[0], first[1])  # members' envs differ
        assert not np.array_equal(first[1][0], first[1][1])  # so do a member's own envs
        bank.step([0, 1], np.zeros((2, 2, 3), np.float32))
        before0 = bank.observe([0]).copy()
        bank.reset([1])
        assert bank.state(1) == {"seed": 7, "resets": 2} and bank.state(0) == {"seed": 3, "resets": 1}
        np.testing.assert_array_equal(bank.observe([0]), before0)  # member 0 untouched
        second = bank.observe([1]).copy()
        assert not np.array_equal(second[0], first[1])  # new seeds, not the same episodes again
        # a checkpointed position: a new bank's member goes on from the next, unused seeds
        other = make([5, 11], 2)
        try:
            other.load_state(1, bank.state(1))
            third = other.observe([1]).copy()
            assert other.state(1) == {"seed": 7, "resets": 3}
            assert not np.array_equal(third[0], first[1]) and not np.array_equal(third[0], second[0])
            bank.reset([1])
            np.testing.assert_array_equal(bank.observe([1]), third)  # the same next seeds
            other.reseed(0, 7)  # member 0 of `other` now follows seed 7's env stream from its start
            np.testing.assert_array_equal(other.observe([0])[0], first[1])
        finally:
            other.close()
    finally:
        bank.close()


def test_gym_bank_keeps_true_final_observations():
    bank = GymBank("CartPole-v1", {}, seeds=[0, 1], num_envs=2)
    try:
        bank.observe([0, 1])
        ended = 0
        for _ in range(100):
            st = bank.step([1], np.zeros((1, 2), np.int64))  # always push left: episodes end fast
            assert st.valid is None and st.obs.shape == (1, 2, 4)
            done = st.terminated | st.truncated
            if done.any():
                # the final observation is out of bounds (|angle| > 0.2095 or |x| > 2.4); the next one is a reset
                fin = st.next_obs[done]
                assert (np.abs(fin[:, 2]) > 0.2).all() or (np.abs(fin[:, 0]) > 2.4).all()
                assert (np.abs(st.obs[done]) < 0.06).all()
                ended += 1
        assert ended >= 2
        assert bank.state(0)["resets"] == 1 and bank.state(1)["resets"] == 1  # each reset once (its first observe)
    finally:
        bank.close()


def test_make_bank_choices():
    bank = make_bank("CartPole-v1", {}, [0], 1, "auto")
    assert isinstance(bank, GymBank)  # EnvPool's CartPole is not in the matched list
    bank.close()
    with pytest.raises(ValueError, match="env_backend"):
        make_bank("CartPole-v1", {}, [0], 1, "cuda")
    with pytest.raises(ValueError, match="env_backend='envpool'"):
        make_bank("CartPole-v1", {}, [0], 1, "envpool")
