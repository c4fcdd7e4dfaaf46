"""Env banks: EnvPool's dynamics match gymnasium's, its next-step autoreset is handled (final observations kept,
reset slots marked), the gymnasium bank keeps true final observations, idle members are not stepped."""
import gymnasium as gym
import numpy as np
import pytest

from rlpop.agents.envbank import ENVPOOL_IDS, EnvPoolBank, GymBank, envpool_available, make_bank

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
def test_envpool_bank_steps_only_the_members_asked_and_restarts_on_a_new_set():
    bank = EnvPoolBank("Hopper-v5", seeds=[0, 1, 2], num_envs=2)
    try:
        bank.observe([0, 1, 2])
        bank.restarted.clear()
        bank.step([0, 1, 2], np.zeros((3, 2, 3), np.float32))
        assert not bank.restarted
        obs = bank.observe([0, 2])
        assert obs.shape == (2, 2, 11) and bank.restarted == {0, 2}
        assert bank._pool.config["num_envs"] == 4  # member 1's envs are not in the pool
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
        assert bank._resets == [1, 1]  # member 0 observed once, never stepped
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
