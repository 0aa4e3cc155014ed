"""MBPO end to end on a tiny config: real collection, world-model fine-tuning through its
LightningModule, imagined transitions entering the learner's buffer."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from wmkit.agents import MBPO, EpisodeReplay, MixedReplayBuffer
from wmkit.agents.testing import SquareGoalEnv, SquareGoalReward
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyWorldModel
from wmkit.core.testing.toy_lit import ToyWorldModelModule

FAST = dict(
    warmup_steps=40,
    init_model_steps=5,
    model_steps_per_iter=3,
    real_steps_per_iter=20,
    rollout_batch=8,
    rollout_horizon=3,
    batch_size=16,
    eval_episodes=1,
    algorithm_kwargs={"buffer_size": 2000, "policy_kwargs": {"net_arch": [16]}},
)


def _mbpo(**kwargs):
    torch.manual_seed(0)
    env = SquareGoalEnv(16, continuous=True, max_steps=10)
    module = ToyWorldModelModule(ToyWorldModel(env.action_spec, hidden=8), lr=3e-3)
    return MBPO(module, env, reward_fn=SquareGoalReward(16), **{**FAST, **kwargs})


def test_mbpo_runs_and_imagined_transitions_enter_the_buffer():
    mbpo = _mbpo()
    before = [p.detach().clone() for p in mbpo.world_model.parameters()]
    result = mbpo.run(2)
    assert result.real_steps == [60, 80]
    assert len(result.eval_return) == 2 and np.isfinite(result.eval_return).all()
    assert np.isfinite(result.model_loss).all()
    # the world model was trained through its LightningModule
    assert any(not torch.equal(a, b) for a, b in zip(before, mbpo.world_model.parameters()))
    # imagined transitions are in the learner's buffer and in its training batches
    buf = mbpo.buffer
    assert buf.imagined.size() == result.imagined[-1] == 2 * 8 * 3
    imagined_obs = buf.imagined.observations[: buf.imagined.size(), 0]
    batch = buf.sample(16)
    from_imagination = [
        any(np.array_equal(o, i) for i in imagined_obs)
        for o in batch.observations.numpy().astype(np.uint8)
    ]
    assert sum(from_imagination) >= 8  # real_ratio 0.5: half the batch is imagined
    # imagined rewards are the reward_fn's on the model's frames, in [0, 1]
    rewards = buf.imagined.rewards[: buf.imagined.size()]
    assert (rewards >= 0).all() and (rewards <= 1).all()


def test_baseline_without_imagination_adds_nothing_and_skips_the_model():
    mbpo = _mbpo(use_imagination=False)
    before = [p.detach().clone() for p in mbpo.world_model.parameters()]
    result = mbpo.run(1)
    assert result.imagined == [0] and mbpo.buffer.imagined.size() == 0
    assert all(torch.equal(a, b) for a, b in zip(before, mbpo.world_model.parameters()))


def test_mixed_buffer_draws_the_real_ratio():
    obs_space = spaces.Box(0, 255, (2,), np.uint8)
    act_space = spaces.Box(-1, 1, (1,), np.float32)
    buf = MixedReplayBuffer(100, obs_space, act_space, "cpu", real_ratio=0.25)
    for _ in range(10):
        buf.add(
            np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}]
        )
    assert (buf.sample(8).observations == 0).all()  # no imagined data yet: all real
    ones = np.ones((5, 2), np.uint8)
    buf.add_imagined(ones, ones, np.zeros((5, 1)), np.ones(5), np.zeros(5, bool))
    batch = buf.sample(8)
    assert int((batch.observations[:, 0] == 1).sum()) == 6  # 8 - round(0.25 * 8)
    with pytest.raises(ValueError, match="real_ratio"):
        MixedReplayBuffer(10, obs_space, act_space, "cpu", real_ratio=1.5)


def test_episode_replay_clips_align_actions_and_rewards():
    spec = ActionSpec.continuous(2)
    replay = EpisodeReplay(spec)
    replay.start_episode(np.zeros((4, 4, 3), np.uint8))
    for t in range(5):
        replay.add(np.full(2, t, np.float32), float(t), t == 4, np.full((4, 4, 3), t + 1, np.uint8))
    clip = replay.clip(0, 1, 3)
    assert clip["frames"].shape == (3, 3, 4, 4)
    assert clip["actions"][:, 0].tolist() == [1, 2, 3] and clip["rewards"].tolist() == [1, 2, 3]
    # frame t is the observation before action t
    assert clip["frames"][0, 0, 0, 0] == pytest.approx(1 / 127.5 - 1)
    assert clip["step_mask"].all()
    # a clip may end on the episode's last frame: the terminal transition is trained too
    end = replay.clip(0, 3, 3)
    assert end["frames"][:, 0, 0, 0].tolist() == pytest.approx([x / 127.5 - 1 for x in (3, 4, 5)])
    assert end["dones"].tolist() == [0, 1, 0] and end["rewards"].tolist() == [3, 4, 0]
    assert end["step_mask"].tolist() == [True, True, False]
    assert end["actions"][:, 0].tolist() == [3, 4, 4]
    with pytest.raises(IndexError, match="outside episode 0"):
        replay.clip(0, 4, 3)
    batch = next(iter(replay.dataloader(clip_length=4, batch_size=2, num_batches=1)))
    assert batch["frames"].shape == (2, 4, 3, 4, 4) and batch["dones"].shape == (2, 4)
    assert len(replay._windows(4, last_frame=True)) == len(replay._windows(4)) + 1
    with pytest.raises(ValueError, match="transitions"):
        replay.sample_clips(1, 9, np.random.default_rng(0))


def test_mbpo_rejects_bad_setups():
    env = SquareGoalEnv(16, continuous=False)
    module = ToyWorldModelModule(ToyWorldModel(env.action_spec, hidden=8))
    with pytest.raises(ValueError, match="continuous"):
        MBPO(module, env)
    cont = SquareGoalEnv(16, continuous=True)
    with pytest.raises(ValueError, match="mismatched"):
        MBPO(ToyWorldModelModule(ToyWorldModel(ActionSpec.continuous(3), hidden=8)), cont)
    with pytest.raises(ValueError, match="algorithm"):
        MBPO(ToyWorldModelModule(ToyWorldModel(cont.action_spec, hidden=8)), cont, algorithm="ppo")
    with pytest.raises(TypeError, match="LightningModule"):
        MBPO(ToyWorldModel(cont.action_spec), cont)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown env"):
        MBPO(ToyWorldModelModule(ToyWorldModel(cont.action_spec, hidden=8)), "no-such-env")
