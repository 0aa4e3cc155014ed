"""PSNR/SSIM wrappers: video layout and [-1, 1] range handled, values as defined."""

import pytest
import torch

from wmkit.tokenizers import psnr, ssim


def test_known_values():
    x = torch.zeros(2, 3, 3, 16, 16)
    y = x + 0.2  # 0.1 in [0, 1] units: MSE 0.01 -> 20 dB
    assert psnr(x, y).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(x, x).item() == 100.0  # identical frames: capped, not inf
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    assert ssim(x, noisy) < ssim(x, (x + noisy) / 2) < 1.0


def test_per_frame_mean_not_pooled():
    x = torch.zeros(1, 2, 3, 8, 8)
    y = x.clone()
    y[:, 1] += 0.2  # frame 0 perfect (100 dB), frame 1 at 20 dB
    assert psnr(x, y).item() == pytest.approx(60.0, abs=1e-3)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.zeros(1, 1, 3, 8, 8), torch.zeros(1, 2, 3, 8, 8))
