"""Diagonal-Gaussian (KL) regularizer of continuous latents (the VAE bottleneck of VidTok's
KL models, after Rombach et al. 2022)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["GaussianOutput", "GaussianRegularizer"]


@dataclass
class GaussianOutput:
    """``latents`` ``[B, C, ...]`` (a sample or the mean), ``mean``, and ``kl`` (summed over
    latent elements, averaged over the batch, as in VidTok)."""

    latents: Tensor
    mean: Tensor
    kl: Tensor


class GaussianRegularizer(nn.Module):
    """Splits ``[B, 2C, ...]`` encoder moments into mean and log-variance.

    Args:
        logvar_range: clamp of the log-variance (numerical safety).
    """

    def __init__(self, logvar_range: tuple[float, float] = (-30.0, 20.0)) -> None:
        super().__init__()
        self.logvar_range = tuple(logvar_range)

    def forward(self, moments: Tensor, sample: bool = True) -> GaussianOutput:
        mean, logvar = moments.float().chunk(2, dim=1)  # [B, C, ...] each
        logvar = logvar.clamp(*self.logvar_range)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
        kl = kl.flatten(1).sum(1).mean()
        return GaussianOutput(latents=z.to(moments.dtype), mean=mean.to(moments.dtype), kl=kl)
