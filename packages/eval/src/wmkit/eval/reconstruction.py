"""Reconstruction quality of any :class:`wmkit.core.Tokenizer` on recorded clips.

Encodes and decodes every clip whole and scores the reconstruction with the standard
per-frame metrics of :mod:`wmkit.eval.frame_metrics`: PSNR of the mean MSE (headline),
mean per-frame PSNR, SSIM and, when an LPIPS network is given, LPIPS. Used by
``wmkit eval tokenizer``, e.g. for a tokenizer converted from a published checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from wmkit.core import Batch, Tokenizer
from wmkit.eval.baselines import tokenizer_reconstruction
from wmkit.eval.frame_metrics import (
    frame_lpips,
    frame_mse,
    frame_psnr,
    frame_ssim,
    psnr_from_mse,
)

__all__ = ["evaluate_reconstruction"]


@torch.no_grad()
def evaluate_reconstruction(
    tokenizer: Tokenizer,
    batches: Iterable[dict[str, Tensor]],
    lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
    max_batches: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Mean reconstruction metrics over ``batches`` of ``{"frames": [B, T, C, H, W]}``.

    Returns ``psnr`` (of the mean MSE), ``psnr_mean`` (mean of per-frame PSNRs), ``ssim``,
    ``lpips`` (only with ``lpips``), ``frames`` and ``clips`` counted. Clip length must suit
    the tokenizer (``1 + k·t`` frames for a causal one with temporal compression ``t``).
    """
    sums: dict[str, float] = {"mse": 0.0, "psnr_mean": 0.0, "ssim": 0.0, "lpips": 0.0}
    frames = clips = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        clip = Batch.coerce(batch, require=("frames",)).frames.to(device)
        recon = tokenizer_reconstruction(tokenizer, clip, clip.shape[1])
        sums["mse"] += frame_mse(recon, clip).sum().item()
        sums["psnr_mean"] += frame_psnr(recon, clip).sum().item()
        sums["ssim"] += frame_ssim(recon, clip).sum().item()
        if lpips is not None:
            sums["lpips"] += frame_lpips(recon, clip, lpips).sum().item()
        frames += clip.shape[0] * clip.shape[1]
        clips += clip.shape[0]
    if frames == 0:
        raise ValueError("no clips to evaluate (empty data or max_batches=0)")
    out = {
        "psnr": float(psnr_from_mse(sums["mse"] / frames)),
        "psnr_mean": sums["psnr_mean"] / frames,
        "ssim": sums["ssim"] / frames,
    }
    if lpips is not None:
        out["lpips"] = sums["lpips"] / frames
    return {**out, "frames": frames, "clips": clips}
