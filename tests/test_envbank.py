"""Env banks: EnvPool's dynamics match gymnasium's, its next-step autoreset is handled (final observations kept,
reset slots marked), the gymnasium bank keeps true final observations, and on every bank a member's envs are its
own: the same whoever else is banked or stepped, reset alone, seeded from its own stream (rlpop.streams)."""
import gymnasium as gym
import numpy as np
import pytest

from rlpop import streams
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


@needs_envpool
@pytest.mark.parametrize("fast", [True, False], ids=["fast-io", "public-api"])
def test_envpool_bank_steps_a_members_pool_as_envpool_does(fast):
    """A member's envs are EnvPool's own pool seeded ``envpool_seed(seed, 0, N)``, stepped through the bank's
    direct send/recv or through EnvPool's public API: the same observations, rewards and episode ends (the
    reset slot after an end: reward 0, no end, invalid)."""
    import envpool

    bank = EnvPoolBank("Hopper-v5", [3, 7], 3)
    ref = envpool.make("Hopper-v5", env_type="gymnasium", num_envs=3, batch_size=3,
                       seed=streams.envpool_seed(7, 0, 3))
    try:
        obs = bank.observe([0, 1])
        assert bank._pools[1].fast  # EnvPool 1.2.5's Hopper has the plain layout
        bank._pools[1].fast = fast
        ro, _ = ref.reset()
        np.testing.assert_array_equal(obs[1], ro)
        rng = np.random.default_rng(0)
        prev_done, resets = np.zeros(3, bool), 0
        for t in range(150):
            act = rng.uniform(-1, 1, (1, 3, 3)).astype(np.float32)
            st = bank.step([1], act)
            ro, rr, rte, rtr, info = ref.step(act[0], np.arange(3, dtype=np.int32))
            inv = np.argsort(info["env_id"])
            ro, rr, rte, rtr = ro[inv], rr[inv], rte[inv], rtr[inv]
            np.testing.assert_array_equal(st.obs[0], ro)
            valid = np.ones(3, bool) if st.valid is None else st.valid[0]
            np.testing.assert_array_equal(valid, ~prev_done)
            np.testing.assert_array_equal(st.reward[0], np.where(valid, rr, 0.0))
            np.testing.assert_array_equal(st.terminated[0], rte & valid)
            np.testing.assert_array_equal(st.truncated[0], rtr & valid)
            prev_done = st.terminated[0] | st.truncated[0]
            resets += int((~valid).sum())
        assert resets >= 3  # episodes ended and restarted inside the sequence
    finally:
        bank.close()
        ref.close()


def _banks(env_id="Hopper-v5"):
    """(name, factory(seeds, num_envs)) of every bank kind available here for ``env_id``."""
    out = [("gym", lambda seeds, n: GymBank(env_id, {}, seeds, n)),
           ("procs", lambda seeds, n: ProcBank(env_id, {}, seeds, n, num_actors=2))]
    if env_id in ENVPOOL_IDS and envpool_available(env_id):
        out.append(("envpool", lambda seeds, n: EnvPoolBank(env_id, seeds, n)))
    return out


def _act_dim(bank):
    return int(np.prod(bank.single_action_space.shape))


def _play(bank, members, who, steps, rng):
    """Step ``members`` for ``steps`` steps with random actions; the observations and rewards of ``who``."""
    seen = []
    bank.observe(members)
    for _ in range(steps):
        act = rng.uniform(-1, 1, (len(members), bank.num_envs, _act_dim(bank))).astype(np.float32)
        st = bank.step(members, act)
        i = members.index(who)
        seen.append((st.obs[i].copy(), st.reward[i].copy()))
    return seen


#: (bank kind, env): every kind on Hopper (terminations: autoresets inside the sequence), gymnasium on Pendulum too
KINDS = [(k, "Hopper-v5") for k, _ in _banks()] + [("gym", "Pendulum-v1")]


@pytest.mark.parametrize("kind,env_id", KINDS)
def test_a_members_envs_are_its_own_whoever_else_is_banked_or_stepped(kind, env_id):
    """Member with seed 7: the same observations and rewards under the same actions alone and banked with
    others (seeds 3 and 9) that step beside it, pause, step while it pauses itself, and reset: its running
    episodes go on whatever set of members is stepped, and another member's reset leaves it alone."""
    make = dict(_banks(env_id))[kind]
    alone, busy = make([7], 2), make([3, 7, 9], 2)
    try:
        d = _act_dim(alone)
        # the set stepped at each step: all, 7 alone, the others while 7 pauses (3 is reset among them), 7 and 9
        plan = [[0, 1, 2]] * 20 + [[1]] * 20 + [[0, 2]] * 15 + [[1, 2]] * 35
        own = sum(1 in members for members in plan)
        ref = _play(alone, [0], 0, own, np.random.default_rng(0))
        rng = np.random.default_rng(0)  # the same actions for the member as alone
        acts = [rng.uniform(-1, 1, (1, 2, d)).astype(np.float32) for _ in range(own)]
        other = np.random.default_rng(1)
        busy.observe([0, 1, 2])
        got = []
        for t, members in enumerate(plan):
            if t == 45:
                busy.reset([0])
            act = other.uniform(-1, 1, (len(members), 2, d)).astype(np.float32)
            if 1 in members:
                act[members.index(1)] = acts[len(got)][0]
            st = busy.step(members, act)
            if 1 in members:
                got.append((st.obs[members.index(1)].copy(), st.reward[members.index(1)].copy()))
        assert len(got) == len(ref) == own
        for (o1, r1), (o2, r2) in zip(ref, got):
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(r1, r2)
    finally:
        alone.close()
        busy.close()


def test_a_paused_members_episode_keeps_its_length():
    """Pendulum truncates at 200 steps: a member paused for 100 steps in the middle of its episode (others
    stepping meanwhile) ends it at its own 200th step, not before, not after."""
    bank = GymBank("Pendulum-v1", {}, seeds=[3, 7], num_envs=2)
    try:
        bank.observe([0, 1])
        zeros = np.zeros((1, 2, 1), np.float32)
        own = 0
        for t in range(300):
            members = [0] if 120 <= t < 220 else [1]  # member 1 pauses for 100 steps after its 120th
            st = bank.step(members, zeros)
            if members == [1]:
                own += 1
                assert list(st.truncated[0]) == [own == 200] * 2, own
    finally:
        bank.close()


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


def test_gym_seeds_come_from_each_members_stream_and_are_never_reused():
    """Reset ``r`` of a member seeds its envs with ``env_seeds(seed, r, N)``: members with consecutive seeds
    (the old ``seed + j`` scheme shared envs between them) and successive resets never share a seed."""
    bank = GymBank("CartPole-v1", {}, seeds=[5, 6], num_envs=3)
    try:
        used = {0: [], 1: []}
        for m, env in enumerate(bank.envs):
            def recording(*a, _reset=env.reset, _m=m, **kw):
                used[_m].append(list(kw["seed"]))
                return _reset(*a, **kw)
            env.reset = recording
        bank.observe([0, 1])
        bank.reset([0])
        bank.reset([0, 1])
        assert used == {0: [streams.env_seeds(5, r, 3) for r in range(3)],
                        1: [streams.env_seeds(6, r, 3) for r in range(2)]}
        every = [x for seeds in used.values() for s in seeds for x in s]
        assert len(set(every)) == len(every) == 15
    finally:
        bank.close()


@needs_envpool
def test_envpool_seeds_come_from_each_members_stream_and_are_never_reused():
    """A member's pool at reset ``r`` is seeded ``envpool_seed(seed, r, N)`` (its env ``j``: that ``+ j``): no
    env seed is shared between members or resets."""
    bank = EnvPoolBank("Hopper-v5", seeds=[5, 6], num_envs=3)
    try:
        built = []
        make = bank._make
        bank._make = lambda n, seed: built.append((n, seed)) or make(n, seed)
        bank.observe([0, 1])
        bank.reset([0])
        bank.reset([1, 0])
        assert built == [(3, streams.envpool_seed(s, r, 3)) for s, r in ((5, 0), (6, 0), (5, 1), (6, 1), (5, 2))]
        every = [seed + j for _, seed in built for j in range(3)]
        assert len(set(every)) == len(every)
        assert bank.state(0) == {"seed": 5, "resets": 3} and bank.state(1) == {"seed": 6, "resets": 2}
    finally:
        bank.close()


def test_env_processes_give_a_member_the_envs_it_has_in_process():
    """ProcBank with 2 actors (2 envs each) and GymBank: the same 4 envs for each member, step by step,
    through autoresets and a reset of one member (env ``j`` gets its seed whatever ``num_actors`` is)."""
    gym_bank = GymBank("Hopper-v5", {}, [3, 7], 4)
    procs = ProcBank("Hopper-v5", {}, [3, 7], 4, num_actors=2)
    try:
        np.testing.assert_array_equal(gym_bank.observe([0, 1]), procs.observe([0, 1]))
        rng = np.random.default_rng(0)
        for t in range(60):
            members = [0, 1] if t % 3 else [1]
            if t == 30:
                assert gym_bank.reset([1]) and procs.reset([1])
            act = rng.uniform(-1, 1, (len(members), 4, 3)).astype(np.float32)
            a, b = gym_bank.step(members, act), procs.step(members, act)
            for name in ("obs", "reward", "terminated", "truncated", "next_obs"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{name} at step {t}")
        assert gym_bank.state(1) == procs.state(1) == {"seed": 7, "resets": 2}
    finally:
        gym_bank.close()
        procs.close()


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
