from dataclasses import replace

import numpy as np
import pytest
import torch

from wmkit.apps.play.session import PlaySession
from wmkit.core import ActionSpec, read_video


def test_model_session_moves_with_actions(world, context, tmp_path):
    s = PlaySession(world, context=context, record_dir=tmp_path)
    first = s.reset()
    assert first.shape == (16, 16, 3) and first.dtype == np.uint8
    right = s.step(torch.tensor(4))
    assert not np.array_equal(first, right)
    assert s.t == 1 and s.last_reward is not None
    with pytest.raises(ValueError, match="out of range"):
        s.step(torch.tensor(7))


def test_a_predicted_termination_is_shown_and_play_goes_on(world, context):
    s = PlaySession(world, context=context)
    s.reset()
    s.step(torch.tensor(4))
    assert s.done is False  # this model predicts no terminations
    step = world.step

    def ending(state, action):
        out = step(state, action)
        return replace(out, done=torch.ones(action.shape[0]))

    world.step = ending
    try:
        s.step(torch.tensor(4))
        assert s.done is True and s.t == 2  # shown, not acted on
        s.reset()
        assert s.done is False
    finally:
        world.step = step


def test_switch_between_env_and_model(world, square_env):
    s = PlaySession(world, square_env(), context_frames=2)
    assert s.sources == ["model", "env"]
    s.set_source("env")
    for _ in range(3):
        real = s.step(torch.tensor(2))
    imagined = s.set_source("model")  # the model continues from the frames just seen
    assert np.array_equal(imagined, real)
    assert np.array_equal(s.step(torch.tensor(2)), s.env.step(2)[0])
    with pytest.raises(ValueError, match="source must be one of"):
        PlaySession(env=square_env()).set_source("model")


def test_recording_writes_mp4(world, context, tmp_path):
    s = PlaySession(world, context=context, record_dir=tmp_path, fps=12)
    s.reset()
    s.start_recording()
    for a in (4, 4, 2, 2):
        s.step(torch.tensor(a))
    path = s.stop_recording()
    frames, fps = read_video(path)
    assert frames.shape == (5, 16, 16, 3) and fps == pytest.approx(12)
    assert s.stop_recording() is None


def test_a_recording_stops_taking_frames_at_its_limit(world, context, tmp_path):
    s = PlaySession(world, context=context, record_dir=tmp_path, fps=12, max_record_seconds=0.25)
    assert s.max_record_frames == 3
    s.reset()
    s.start_recording()
    for _ in range(2):
        assert not s.recording_full
        s.step(torch.tensor(4))
    assert s.recording_full
    s.step(torch.tensor(4))
    frames, _ = read_video(s.stop_recording())
    assert frames.shape[0] == 3 and not s.recording_full


def test_bad_construction(world, square_env):
    with pytest.raises(ValueError, match="needs a world model, an environment"):
        PlaySession()
    with pytest.raises(ValueError, match="needs a context source"):
        PlaySession(world)
    with pytest.raises(ValueError, match="max_record_seconds must be > 0"):
        PlaySession(world, context=lambda: None, max_record_seconds=0)

    class OtherEnv(square_env):
        action_spec = ActionSpec.discrete(3)

    with pytest.raises(ValueError, match="mismatched environment action spec"):
        PlaySession(world, OtherEnv())
