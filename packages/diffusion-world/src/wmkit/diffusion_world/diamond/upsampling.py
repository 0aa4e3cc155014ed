"""CS:GO's second stage (Alonso et al. 2024, arXiv:2405.12399, App. F; the ``csgo`` branch's
``WorldModelEnv.upsample_next_obs``): a low-resolution next frame becomes a full-resolution
one by diffusion, conditioned on the previous full-resolution frame(s) and on the bicubic
upsampling of the low-resolution frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from wmkit.diffusion_world.diamond.denoiser import DiamondDenoiser
from wmkit.diffusion_world.diamond.network import DIAMOND_NETWORK_SIZES, DiamondNetwork
from wmkit.diffusion_world.diamond.preconditioning import DiamondEDM
from wmkit.diffusion_world.diamond.sampler import (
    DiamondSample,
    DiamondSampler,
    DiamondSamplerConfig,
)

__all__ = ["FAST_UPSAMPLING", "DiamondUpsamplerConfig", "upsample_next_obs"]


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


@dataclass
class DiamondUpsamplerConfig:
    """The CS:GO upsampling stage of a world model (defaults: the released one, ``fast``).

    Args:
        network: :class:`~wmkit.diffusion_world.diamond.DiamondNetwork` arguments
            (``upsampler=True``).
        objective: :class:`~wmkit.diffusion_world.diamond.DiamondEDM` arguments.
        sampler: :class:`~wmkit.diffusion_world.diamond.DiamondSamplerConfig` arguments.
        factor: the upsampling factor (low-resolution frames are ``1 / factor`` the size).
    """

    network: dict[str, Any] = field(
        default_factory=lambda: {**DIAMOND_NETWORK_SIZES["csgo_upsampler"]}
    )
    objective: dict[str, Any] = field(default_factory=lambda: {"sigma_offset_noise": 0.1})
    sampler: dict[str, Any] = field(default_factory=lambda: dict(FAST_UPSAMPLING))
    factor: int = 5

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"DiamondUpsamplerConfig.factor must be >= 1; got {self.factor}")
        # checked and stored with every field, as dicts (JSON)
        for name, cls in (("objective", DiamondEDM), ("sampler", DiamondSamplerConfig)):
            value = getattr(self, name)
            setattr(self, name, asdict(cls(**value) if isinstance(value, dict) else value))

    def build(self) -> DiamondSampler:
        """The upsampler denoiser wrapped in its sampler."""
        net = DiamondNetwork(**{**self.network, "upsampler": True, "num_actions": None})
        denoiser = DiamondDenoiser(net, DiamondEDM(**self.objective), False, self.factor)
        return DiamondSampler(denoiser, DiamondSamplerConfig(**self.sampler))


#: the released CS:GO ``fast`` preset's upsampling sampler (``higher_quality``: 10 steps,
#: order 1)
FAST_UPSAMPLING: dict[str, Any] = {
    "num_steps_denoising": 1, "sigma_min": 1.0, "sigma_max": 5.0, "rho": 7.0, "order": 2,
    "s_churn": 10.0, "s_tmin": 1.0, "s_tmax": 5.0, "s_noise": 0.9, "s_cond": 0.0,
}  # fmt: skip
