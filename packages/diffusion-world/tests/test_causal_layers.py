"""Vid2World's temporal-conv weight transfer, per-frame GroupNorm, causal attention."""

import pytest
import torch
from torch import nn

from wmkit.diffusion_world import CausalTemporalConv3d, FrameGroupNorm, transfer_temporal_kernel


def _conv(k: int = 3, seed: int = 0) -> nn.Conv3d:
    torch.manual_seed(seed)
    return nn.Conv3d(4, 5, (k, 1, 1), padding=(k // 2, 0, 0))


def _linear_video(t: int = 10) -> torch.Tensor:
    torch.manual_seed(1)
    a, b = torch.randn(2, 1, 4, 1, 3, 3).unbind(0)
    steps = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1)
    return a + b * steps  # [1, 4, T, 3, 3], linear in time


@pytest.mark.parametrize("k", [3, 5])
def test_extrapolative_is_exact_on_linear_input_and_beats_shift_and_masked(k):
    conv = _conv(k)
    x = _linear_video()
    m = k // 2
    with torch.no_grad():
        ref = conv(x)[:, :, k - 1 : x.shape[2] - m]  # interior frames (no zero padding used)
        errs = {}
        for rule in ("shift", "masked", "extrapolative"):
            out = CausalTemporalConv3d.from_conv(conv, rule)(x)[:, :, k - 1 : x.shape[2] - m]
            errs[rule] = (out - ref).abs().max().item()
    assert errs["extrapolative"] < 1e-4
    assert errs["shift"] > 100 * max(errs["extrapolative"], 1e-6)
    assert errs["masked"] > 100 * max(errs["extrapolative"], 1e-6)


@pytest.mark.parametrize("rule", ["shift", "masked", "extrapolative"])
def test_causal_conv_is_strictly_causal_and_keeps_shape(rule):
    conv = CausalTemporalConv3d.from_conv(_conv(3), rule)
    x = torch.randn(2, 4, 6, 3, 3)
    with torch.no_grad():
        y = conv(x)
        for t in range(1, 6):
            x2 = x.clone()
            x2[:, :, t:] = torch.randn_like(x2[:, :, t:])
            assert torch.equal(conv(x2)[:, :, :t], y[:, :, :t])
    assert y.shape == (2, 5, 6, 3, 3)
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_shift_rule_delays_the_original_by_half_a_kernel():
    conv = _conv(3)
    x = torch.randn(1, 4, 8, 3, 3)
    with torch.no_grad():
        assert torch.allclose(
            CausalTemporalConv3d.from_conv(conv, "shift")(x)[:, :, 2:],
            conv(x)[:, :, 1:-1],
            atol=1e-6,
        )


def test_transfer_rejects_bad_rule_and_even_kernel():
    with pytest.raises(ValueError, match="temporal_conv"):
        transfer_temporal_kernel(torch.randn(3, 3), "future")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        transfer_temporal_kernel(torch.randn(3, 4), "masked")
    with pytest.raises(ValueError, match="stride"):
        CausalTemporalConv3d.from_conv(nn.Conv3d(2, 2, (3, 1, 1), padding=0), "masked")


def test_frame_group_norm_is_per_frame_and_plain_on_4d():
    norm = nn.GroupNorm(2, 4)
    nn.init.normal_(norm.weight)
    frame_norm = FrameGroupNorm.from_group_norm(norm)
    x4 = torch.randn(3, 4, 5, 5)
    assert torch.equal(frame_norm(x4), norm(x4))
    x5 = torch.randn(2, 4, 6, 5, 5)
    y = frame_norm(x5)
    x5b = x5.clone()
    x5b[:, :, 3:] *= 10
    assert torch.allclose(frame_norm(x5b)[:, :, :3], y[:, :, :3], atol=1e-6)
    assert not torch.allclose(norm(x5b)[:, :, :3], norm(x5)[:, :, :3], atol=1e-3)
