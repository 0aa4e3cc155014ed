"""The carried history cache (``carry_history=True``): ``append_kv`` equals encoding the
longer history; until the window is full a carried rollout equals the sliding one, and past
it too when every frame refreshes; the history grows to the window and is cut to
``refresh_keep``, encoded only after a refresh; conformance; bad settings fail clearly."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model, randomised

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.diffusion_world.dit import SpatioTemporalDiT

SPEC = ActionSpec.discrete(5)


def _data(length: int = 12):
    eps = moving_squares(num_episodes=2, length=length, size=16)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


def _model(objective: str = "edm", residual: bool = True, **kwargs) -> DiffusionWorldModel:
    kwargs.setdefault("context_window", 6)
    torch.manual_seed(0)
    model = flat_model(
        SPEC, objective=objective, residual=residual, sigma_data=0.2, reward_head=True, **kwargs
    )
    return randomised(model).eval()


def _calls(model: DiffusionWorldModel) -> dict[str, int]:
    counts = {"forward": 0, "history_kv": 0, "forward_next": 0, "append_kv": 0}
    net = model.network
    for name in counts:
        original = getattr(net, name)

        def counted(*args, _name=name, _fn=original, **kwargs):
            counts[_name] += 1
            return _fn(*args, **kwargs)

        setattr(net, name, counted)
    return counts


class TestCarriedHistory(WorldModelTests):
    def make_model(self):
        return _model(num_sampling_steps=2, guidance_scale=1.5, carry_history=True)

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:9]  # past the window: refreshed


def test_append_kv_equals_encoding_the_longer_history():
    torch.manual_seed(0)
    net = randomised(SpatioTemporalDiT(3, 8, 2, hidden_size=16, depth=3, num_heads=2)).eval()
    x, t, c = torch.randn(2, 5, 3, 8, 8), torch.rand(2, 5) * 100, torch.randn(2, 5, 16)
    with torch.no_grad():
        full = net.history_kv(x, t, c)
        grown = net.append_kv(
            x[:, 4:], t[:, 4:], c[:, 4:], net.history_kv(x[:, :4], t[:, :4], c[:, :4])
        )
    torch.testing.assert_close(grown, full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="rows of x"):
        net.append_kv(x[:1, 4:], t[:1, 4:], c[:1, 4:], full)
    with pytest.raises(ValueError, match="one new frame"):
        net.append_kv(x[:, 3:], t[:, 3:], c[:, 3:], full)


@pytest.mark.parametrize(
    "objective, residual, steps, guidance",
    [("edm", True, 1, 1.0), ("edm", True, 2, 1.5), ("flow", True, 2, 1.0), ("ddpm", False, 2, 1.5)],
)
def test_until_the_window_is_full_a_carried_rollout_equals_the_sliding_one(
    objective, residual, steps, guidance
):
    frames, actions = _data()
    common = {"num_sampling_steps": steps, "guidance_scale": guidance, "context_window": 8}
    outs = []
    for carry in (False, True):
        model = _model(objective, residual, carry_history=carry, **common)
        torch.manual_seed(1)
        outs.append(model.rollout(frames[:, :2], actions[:, 1:6]))  # history 2 → 6 < 7 frames
    torch.testing.assert_close(outs[1].frames, outs[0].frames, atol=1e-4, rtol=0)
    torch.testing.assert_close(outs[1].rewards, outs[0].rewards, atol=1e-4, rtol=0)


def test_refreshing_every_frame_equals_the_sliding_window_past_the_window():
    frames, actions = _data()
    outs = []
    for carry in (False, True):
        model = _model(num_sampling_steps=2, guidance_scale=1.5, carry_history=carry,
                       refresh_keep=5)  # fmt: skip
        torch.manual_seed(1)
        outs.append(model.rollout(frames[:, :2], actions[:, 1:10]))  # window 6, 9 frames
    torch.testing.assert_close(outs[1].frames, outs[0].frames, atol=1e-4, rtol=0)


def test_the_history_grows_to_the_window_then_is_cut_to_refresh_keep():
    frames, actions = _data(length=16)
    model = _model(num_sampling_steps=1, carry_history=True)  # window 6: refresh_keep 3
    calls = _calls(model)
    state = model.reset(frames[:, :2])
    lengths = []
    for t in range(1, 13):
        lengths.append(state.x.shape[1])
        kv = state.kv
        assert kv is None or kv.shape[-2] == lengths[-1]  # the cache holds the whole history
        state = model.step(state, actions[:, t]).state
    assert lengths == [2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 3, 4]
    # encoded after reset and after each of the 3 refreshes; appended unless the window filled
    assert calls == {"forward": 0, "history_kv": 4, "forward_next": 12, "append_kv": 9}
    sliding = _model(num_sampling_steps=1)
    calls = _calls(sliding)
    sliding.rollout(frames[:, :2], actions[:, 1:13])
    assert calls["forward"] == 12  # one call on the whole window per frame


def test_carry_history_settings_fail_clearly():
    with pytest.raises(ValueError, match="history_noise_level=0"):
        flat_model(SPEC, history_noise_level=10, carry_history=True)
    with pytest.raises(ValueError, match="refresh_keep"):
        flat_model(SPEC, context_window=6, carry_history=True, refresh_keep=6)
    with pytest.raises(ValueError, match="refresh_keep"):
        flat_model(SPEC, context_window=6, carry_history=True, refresh_keep=0)
