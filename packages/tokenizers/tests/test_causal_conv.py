"""Causal convolutions: outputs never see future frames; streaming equals one full pass."""

import pytest
import torch

from wmkit.tokenizers.blocks import TemporalDownsample, TemporalUpsample
from wmkit.tokenizers.causal_conv import CausalConv3d, is_streaming, streaming


def _x(t: int) -> torch.Tensor:
    return torch.randn(2, 3, t, 5, 5, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kernel, stride", [(3, 1), ((3, 1, 1), 1), (3, (2, 1, 1)), (5, 1)])
def test_causal_conv_output_ignores_future_frames(kernel, stride):
    conv = CausalConv3d(3, 4, kernel, stride=stride).eval()
    x = _x(8)
    s = stride if isinstance(stride, int) else stride[0]
    base = conv(x)
    assert base.shape[2] == 8 // s and base.shape[3:] == (5, 5)
    for t in range(1, 8):
        x2 = x.clone()
        x2[:, :, t:] = torch.randn_like(x2[:, :, t:])
        keep = t // s  # outputs i with s·i + s - 1 < t
        assert torch.equal(conv(x2)[:, :, :keep], base[:, :, :keep]), t


@pytest.mark.parametrize(
    "make, chunk",
    [
        (lambda: CausalConv3d(3, 3, 3), 1),
        (lambda: CausalConv3d(3, 3, 3, stride=(2, 1, 1)), 2),
        (lambda: TemporalDownsample(3), 2),
        (lambda: TemporalUpsample(3), 1),
    ],
)
def test_streaming_equals_full_pass(make, chunk):
    module = make().eval()
    x = _x(8)
    full = module(x)
    with streaming(module):
        assert is_streaming(module)
        parts = [module(c) for c in x.split(chunk, dim=2)]
    assert not is_streaming(module)
    torch.testing.assert_close(torch.cat(parts, 2), full, atol=1e-6, rtol=0)


def test_streaming_cannot_nest():
    conv = CausalConv3d(3, 3, 3)
    with streaming(conv), pytest.raises(RuntimeError, match="already streaming"), streaming(conv):
        pass


def test_bad_kernel_rejected():
    with pytest.raises(ValueError, match="odd"):
        CausalConv3d(3, 3, (3, 2, 2))
    with pytest.raises(ValueError, match="stride"):
        CausalConv3d(3, 3, (1, 3, 3), stride=(2, 1, 1))
