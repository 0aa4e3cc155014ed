"""Play's latency (`wmkit.apps.play.latency`) and the step times a `PlaySession` keeps."""

import pytest
import torch

from wmkit.apps.play.latency import StepTimes, play_latency
from wmkit.apps.play.session import PlaySession
from wmkit.core.testing import ToyLatentStepWorldModel


def test_play_latency_is_lag_frame_periods_plus_the_step_time():
    assert play_latency(0, 0.1, 0.02) == pytest.approx(0.02)
    assert play_latency(3, 0.1, 0.02) == pytest.approx(0.32)
    with pytest.raises(ValueError, match="lag, frame_period and step_seconds"):
        play_latency(-1, 0.1, 0.02)
    times = StepTimes(window=2)
    assert times.mean == 0 and times.latency(0.1) == 0
    for seconds, lag in ((1.0, 0), (0.2, 3), (0.4, 3)):
        times.record(seconds, lag)
    assert times.mean == pytest.approx(0.3) and times.latency(0.1) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="window"):
        StepTimes(window=0)


def test_a_session_keeps_the_lag_of_a_k_frame_model_and_clears_it_on_reset(world, context):
    torch.manual_seed(0)
    latent = ToyLatentStepWorldModel(world.action_spec, frames_per_step=4, hidden=4)
    s = PlaySession(latent, context=context)
    assert s.frames_per_step == 4
    first = s.reset()
    lags = []
    for _ in range(6):
        frame = s.step(torch.tensor(4))
        lags.append(s.timing.lag)
        if len(lags) < 4:  # the first latent step is not complete: the context frame again
            assert (frame == first).all()
    assert lags == [1, 2, 3, 3, 3, 3] and len(s.timing.seconds) == 6 and s.timing.mean > 0
    s.reset()
    assert s.timing.lag == 0 and not s.timing.seconds
    per_frame = PlaySession(world, context=context)
    per_frame.step(torch.tensor(4))
    assert per_frame.frames_per_step == 1 and per_frame.timing.lag == 0
