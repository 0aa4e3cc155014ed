"""Reconstruction metrics on videos in [-1, 1]: PSNR and SSIM averaged over frames.

Thin wrappers that map ``[B, T, C, H, W]`` in [-1, 1] to frames in [0, 1] and call
torchmetrics' functional PSNR/SSIM (Gaussian window 11, sigma 1.5), so the numbers are the
standard ones; ``wmkit-eval`` uses the same implementations.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

__all__ = ["psnr", "ssim"]


def _frames(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(
            f"x and y must be [B, T, C, H, W] of the same shape; got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    a = rearrange((x.float().clamp(-1, 1) + 1) / 2, "b t c h w -> (b t) c h w")
    b = rearrange((y.float().clamp(-1, 1) + 1) / 2, "b t c h w -> (b t) c h w")
    return a, b


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Mean over frames of the PSNR (dB) of two ``[B, T, C, H, W]`` videos in [-1, 1]."""
    a, b = _frames(x, y)
    per_frame = peak_signal_noise_ratio(
        a, b, data_range=1.0, reduction="none", dim=(1, 2, 3)
    )  # [(B T)]
    return per_frame.clamp(max=100.0).mean()


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM over frames of two ``[B, T, C, H, W]`` videos in [-1, 1]."""
    a, b = _frames(x, y)
    return structural_similarity_index_measure(a, b, data_range=1.0)
