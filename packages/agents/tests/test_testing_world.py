"""The scripted world model is exactly the real square world (so tests can trust it)."""

import numpy as np
import torch

from wmkit.agents.spaces import obs_to_frames
from wmkit.agents.testing import SquareGoalEnv, SquareGoalReward, SquareGoalWorldModel
from wmkit.core.testing import check_world_model


def test_scripted_model_matches_the_real_env_frame_for_frame():
    env = SquareGoalEnv(16, continuous=True, max_steps=6)
    wm = SquareGoalWorldModel(16, continuous=True)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(6, 2)).astype(np.float32)
    frame = env.reset(3)
    real_frames, real_rewards = [], []
    for a in actions:
        f, r, _ = env.step(a)
        real_frames.append(f)
        real_rewards.append(r)
    out = wm.rollout(obs_to_frames(frame[None])[:, None], torch.from_numpy(actions)[None])
    expected = obs_to_frames(np.stack(real_frames))
    assert torch.allclose(out.frames[0], expected, atol=1e-6)
    assert np.allclose(out.rewards[0].numpy(), real_rewards, atol=1e-5)
    # read off frames, the reward sees the pixel-rounded position: within half a pixel
    reward_fn = SquareGoalReward(16)
    assert np.allclose(reward_fn(None, None, out.frames[0]).numpy(), real_rewards, atol=0.05)


def test_scripted_model_passes_core_conformance():
    env = SquareGoalEnv(16, continuous=False)
    wm = SquareGoalWorldModel(16, continuous=False)
    ctx = obs_to_frames(np.stack([env.reset(s) for s in range(2)]))[:, None]
    check_world_model(wm, ctx, torch.tensor([[1, 2, 4], [0, 3, 3]]), save_load=False)
