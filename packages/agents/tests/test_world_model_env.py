"""WorldModelEnv / WorldModelVecEnv: gymnasium contract, seeding, batching, rewards, errors."""

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from wmkit.agents import ClipContexts, WorldModelEnv, WorldModelVecEnv, action_space_from_spec
from wmkit.agents.spaces import frames_to_obs
from wmkit.agents.testing import SquareGoalReward, SquareGoalWorldModel
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyWorldModel, moving_squares


def _contexts(continuous=False, t0=2):
    eps = moving_squares(4, 6, 16, continuous=continuous)
    return ClipContexts(to_float_video(eps.frames), torch.from_numpy(eps.actions), t0), eps


@pytest.mark.parametrize("continuous", [False, True])
def test_check_env_passes_for_tiny_world_model(continuous):
    torch.manual_seed(0)
    contexts, eps = _contexts(continuous)
    env = WorldModelEnv(ToyWorldModel(eps.action_spec, hidden=8), contexts, max_episode_steps=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert not [str(w.message) for w in caught]
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (16, 16, 3)


def test_action_spaces_follow_the_spec():
    assert action_space_from_spec(ActionSpec.discrete(5)) == spaces.Discrete(5)
    md = action_space_from_spec(ActionSpec.multi_discrete([2, 3]))
    assert isinstance(md, spaces.MultiDiscrete) and list(md.nvec) == [2, 3]
    box = action_space_from_spec(ActionSpec.continuous(2, -2.0, 1.0))
    assert box.shape == (2,) and box.low.tolist() == [-2, -2] and box.high.tolist() == [1, 1]


def test_seeded_reset_and_steps_are_reproducible():
    contexts, eps = _contexts()
    env = WorldModelEnv(ToyWorldModel(eps.action_spec, hidden=8), contexts)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        traj = [obs] + [env.step(a)[0] for a in (1, 4, 2)]
        runs.append(np.stack(traj))
    assert np.array_equal(runs[0], runs[1])
    other, _ = env.reset(seed=4)
    starts = {env.reset(seed=s)[0].tobytes() for s in range(8)}
    assert len(starts) > 1, other.shape  # different seeds start from different clips


def test_batched_vec_env_equals_single_envs():
    """N environments in one batch give the same frames and rewards as N single envs."""
    torch.manual_seed(0)
    contexts, eps = _contexts(t0=1)
    wm = ToyWorldModel(eps.action_spec, hidden=8)
    frames = contexts.frames[:3, :1]  # three fixed starts
    vec = WorldModelVecEnv(wm, frames, num_envs=3, max_episode_steps=10, seed=0)
    rng = np.random.default_rng(0)
    obs = vec.reset()
    acts = rng.integers(0, 5, size=(4, 3))
    vec_obs, vec_rew = [obs], []
    for a in acts:
        o, r, _, _ = vec.step(a)
        vec_obs.append(o)
        vec_rew.append(r)
    for i in range(3):
        # the vec env picked its starts at random: find env i's start among the clips
        starts = frames_to_obs(frames[:, 0])  # [3, H, W, C]
        j = next(k for k in range(3) if np.array_equal(vec_obs[0][i], starts[k]))
        single = WorldModelEnv(wm, frames[j : j + 1], max_episode_steps=10)
        o, _ = single.reset(seed=0)
        assert np.array_equal(o, vec_obs[0][i])
        for t, a in enumerate(acts[:, i]):
            o, r, *_ = single.step(int(a))
            assert np.array_equal(o, vec_obs[t + 1][i])
            assert r == pytest.approx(float(vec_rew[t][i]), abs=1e-6)


def test_vec_env_truncates_and_restarts_with_sb3_infos():
    contexts, eps = _contexts()
    vec = WorldModelVecEnv(ToyWorldModel(eps.action_spec, hidden=8), contexts, 2,
                           max_episode_steps=2, seed=1)  # fmt: skip
    vec.reset()
    _, _, done, infos = vec.step(np.array([1, 2]))
    assert not done.any()
    _, _, done, infos = vec.step(np.array([1, 2]))
    assert done.all()
    assert all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"].shape == (16, 16, 3) for info in infos)
    _, _, done, _ = vec.step(np.array([0, 0]))  # restarted: the horizon counts again
    assert not done.any()


def test_rewards_come_from_model_head_or_reward_fn():
    wm = SquareGoalWorldModel(16, continuous=True)
    start = to_float_video(np.full((1, 1, 16, 16, 3), 16, np.uint8))
    start[:, :, :, 2:6, 2:6] = 0.8
    env = WorldModelEnv(wm, start)
    env.reset(seed=0)
    _, head_reward, *_ = env.step(np.array([1.0, 1.0], np.float32))
    env_fn = WorldModelEnv(SquareGoalWorldModel(16, predict_reward=False), start,
                           reward_fn=SquareGoalReward(16))  # fmt: skip
    env_fn.reset(seed=0)
    _, fn_reward, *_ = env_fn.step(np.array([1.0, 1.0], np.float32))
    assert fn_reward == pytest.approx(head_reward, abs=1e-5)
    silent = WorldModelEnv(SquareGoalWorldModel(16, predict_reward=False), start)
    silent.reset(seed=0)
    with pytest.raises(ValueError, match="predicts no reward"):
        silent.step(np.array([0.0, 0.0], np.float32))


def test_termination_fn_ends_episodes():
    contexts, eps = _contexts()
    env = WorldModelEnv(ToyWorldModel(eps.action_spec, hidden=8), contexts,
                        termination_fn=lambda f, a, n: a == 2)  # fmt: skip
    env.reset(seed=0)
    assert env.step(1)[2] is False
    assert env.step(2)[2] is True


def test_ppo_trains_in_imagination():
    """DIAMOND-style: an SB3 on-policy learner runs directly on the batched imagined env."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    contexts, eps = _contexts()
    vec = WorldModelVecEnv(ToyWorldModel(eps.action_spec, hidden=8), contexts, 4,
                           max_episode_steps=8, seed=0)  # fmt: skip
    agent = PPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    agent.set_logger(Logger(folder=None, output_formats=[]))  # SB3 would make a /tmp/SB3-* dir
    agent.learn(64)
    assert agent.num_timesteps >= 64


def test_bad_inputs_raise_clear_errors():
    contexts, eps = _contexts()
    wm = ToyWorldModel(eps.action_spec, hidden=8)
    with pytest.raises(TypeError, match="WorldModel"):
        WorldModelEnv(object(), contexts)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_episode_steps"):
        WorldModelEnv(wm, contexts, max_episode_steps=0)
    with pytest.raises(ValueError, match="render_mode"):
        WorldModelEnv(wm, contexts, render_mode="human")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ClipContexts(torch.full((2, 3, 3, 16, 16), 5.0))
    with pytest.raises(ValueError, match="context_length"):
        ClipContexts(contexts.frames, context_length=99)
    env = WorldModelEnv(wm, contexts)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(7)
    with pytest.raises(ValueError, match="values"):
        env.step(np.array([1, 2]))
