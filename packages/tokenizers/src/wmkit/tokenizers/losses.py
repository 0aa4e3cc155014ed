"""Losses of tokenizer training: perceptual distance (LPIPS from ``wmkit-core``) and the hinge
GAN losses of the optional patch discriminator (VidTok §3.3, after Esser et al. 2021)."""

from __future__ import annotations

import warnings

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "discriminator_hinge_loss",
    "generator_hinge_loss",
    "load_perceptual",
    "perceptual_distance",
]

_warned: set[str] = set()


def load_perceptual(net: str = "alex") -> nn.Module | None:
    """Build the frozen LPIPS network, or warn once and return ``None`` when it (or its
    weights) is not available, so training goes on without the perceptual term."""
    try:
        from wmkit.core.lpips import LPIPS

        return LPIPS(net=net, check_range=False).eval()  # type: ignore[arg-type]
    except (ImportError, FileNotFoundError) as e:  # MissingWeightsError is a FileNotFoundError
        if net not in _warned:
            _warned.add(net)
            warnings.warn(
                f"perceptual loss disabled: LPIPS ({net}) is unavailable ({e})",
                RuntimeWarning,
                stacklevel=2,
            )
        return None


def perceptual_distance(lpips: nn.Module, recon: Tensor, target: Tensor) -> Tensor:
    """Mean LPIPS over every frame of two ``[B, T, C, H, W]`` videos in [-1, 1]."""
    x = rearrange(recon, "b t c h w -> (b t) c h w")
    y = rearrange(target, "b t c h w -> (b t) c h w")
    return lpips(x, y).mean()


def discriminator_hinge_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``, halved."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_hinge_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(fake)]``."""
    return -fake_logits.mean()
