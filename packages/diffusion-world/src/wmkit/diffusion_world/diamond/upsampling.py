"""CS:GO's second stage (Alonso et al. 2024, arXiv:2405.12399, App. F; the ``csgo`` branch's
``WorldModelEnv.upsample_next_obs``): a low-resolution next frame becomes a full-resolution
one by diffusion, conditioned on the previous full-resolution frame(s) and on the bicubic
upsampling of the low-resolution frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wmkit.diffusion_world.diamond.sampler import DiamondSample, DiamondSampler

__all__ = ["upsample_next_obs"]


@torch.no_grad()
def upsample_next_obs(
    sampler: DiamondSampler,
    prev_full_res: Tensor,
    low_res_next: Tensor,
    generator: torch.Generator | None = None,
) -> DiamondSample:
    """Sample the full-resolution next frame with an upsampler denoiser's ``sampler``.

    Args:
        sampler: a :class:`DiamondSampler` over an upsampler (``upsampling_factor`` set).
        prev_full_res: the last ``n`` full-resolution frames ``[B, n, C, H, W]``.
        low_res_next: the low-resolution next frame ``[B, C, H / f, W / f]``; upsampled
            bicubically (``align_corners=False``, not clamped).
        generator: where the sampler's noise comes from.
    """
    up = sampler.denoiser
    factor, n = up.upsampling_factor, up.num_steps_conditioning
    if factor is None:
        raise ValueError("upsample_next_obs needs a sampler over an upsampler denoiser")
    if prev_full_res.ndim != 5 or prev_full_res.shape[1] != n or low_res_next.ndim != 4:
        raise ValueError(
            f"prev_full_res must be [B, {n}, C, H, W] and low_res_next [B, C, h, w]; got "
            f"{tuple(prev_full_res.shape)} and {tuple(low_res_next.shape)}"
        )
    want = (low_res_next.shape[-2] * factor, low_res_next.shape[-1] * factor)
    if tuple(prev_full_res.shape[-2:]) != want:
        raise ValueError(
            f"prev_full_res frames must be {want} ({factor} x the low-resolution frame); got "
            f"{tuple(prev_full_res.shape[-2:])}"
        )
    low = up.upsampled(low_res_next)  # [B, C, H, W]
    return sampler.sample(torch.cat([prev_full_res, low[:, None]], dim=1), None, generator)
