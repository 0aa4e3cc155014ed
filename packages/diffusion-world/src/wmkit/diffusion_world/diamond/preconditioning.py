"""``DiamondEDM``: DIAMOND's variant of EDM preconditioning (Karras et al. 2022, as adapted in
Alonso et al. 2024, arXiv:2405.12399, §3 and App. B), and its training noise.

Where DIAMOND differs from EDM (and from :class:`~wmkit.diffusion_world.EDMObjective`):

- *offset noise*: training adds ``sigma_offset_noise · ε`` per sample and channel (constant
  over pixels), and every coefficient uses ``s = sqrt(σ² + σ_offset²)`` in place of σ;
- ``c_noise = ln(s) / 4`` is fed as is to the network's Fourier features;
- the conditioning frames are divided by ``sigma_data`` (not by ``c_in``);
- the denoised frame is clamped to [-1, 1] and *truncated* onto the 8-bit grid (the
  sampler's output is always a valid frame);
- CS:GO adds ``c_noise_cond = ln(σ_cond) / 4`` for the conditioning frames' own noise
  (``0`` when they are clean).

Expressions are evaluated in the released code's order so that results match it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Conditioners", "DiamondEDM"]


def _add_dims(x: Tensor, ndim: int) -> Tensor:
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


@dataclass
class Conditioners:
    """``c_in``, ``c_out``, ``c_skip`` (``[B, 1, 1, 1]``, or ``[1, 1, 1, 1]`` for a scalar σ),
    and the network's noise codes ``c_noise``, ``c_noise_cond`` (``[B]`` or ``[1]``)."""

    c_in: Tensor
    c_out: Tensor
    c_skip: Tensor
    c_noise: Tensor
    c_noise_cond: Tensor


@dataclass
class DiamondEDM:
    """DIAMOND's preconditioning and training noise-level distribution.

    Args:
        sigma_data: standard deviation of the data (frames in [-1, 1]).
        sigma_offset_noise: offset-noise standard deviation (Atari 0.3, CS:GO 0.1).
        train_sigma_loc: mean of ``ln σ`` in training.
        train_sigma_scale: standard deviation of ``ln σ`` in training.
        train_sigma_min: training σ is clipped to at least this.
        train_sigma_max: ... and at most this.
    """

    sigma_data: float = 0.5
    sigma_offset_noise: float = 0.3
    train_sigma_loc: float = -0.4
    train_sigma_scale: float = 1.2
    train_sigma_min: float = 2e-3
    train_sigma_max: float = 20.0

    def __post_init__(self) -> None:
        if self.sigma_data <= 0 or self.sigma_offset_noise < 0:
            raise ValueError(
                f"DiamondEDM needs sigma_data > 0 and sigma_offset_noise >= 0; got "
                f"{self.sigma_data}, {self.sigma_offset_noise}"
            )
        if not 0 < self.train_sigma_min < self.train_sigma_max:
            raise ValueError(
                f"DiamondEDM needs 0 < train_sigma_min < train_sigma_max; got "
                f"{self.train_sigma_min}, {self.train_sigma_max}"
            )

    def conditioners(self, sigma: Tensor, sigma_cond: Tensor | None = None) -> Conditioners:
        """The coefficients at noise level ``sigma`` (``[B]`` or a scalar tensor) for clean
        (``sigma_cond=None``) or re-noised conditioning frames."""
        sigma = (sigma**2 + self.sigma_offset_noise**2).sqrt()
        c_in = 1 / (sigma**2 + self.sigma_data**2).sqrt()
        c_skip = self.sigma_data**2 / (sigma**2 + self.sigma_data**2)
        c_out = sigma * c_skip.sqrt()
        c_noise = sigma.log() / 4
        c_noise_cond = sigma_cond.log() / 4 if sigma_cond is not None else torch.zeros_like(c_noise)
        return Conditioners(
            _add_dims(c_in, 4),
            _add_dims(c_out, 4),
            _add_dims(c_skip, 4),
            _add_dims(c_noise, 1),
            _add_dims(c_noise_cond, 1),
        )

    def scale_inputs(self, noisy: Tensor, obs: Tensor, cs: Conditioners) -> tuple[Tensor, Tensor]:
        """``(c_in · noisy, obs / sigma_data)``: what the network sees."""
        return noisy * cs.c_in, obs / self.sigma_data

    def denoised(
        self, noisy: Tensor, out: Tensor, cs: Conditioners, quantize: bool = True
    ) -> Tensor:
        """``D = c_skip · noisy + c_out · F``; with ``quantize``, clamped to [-1, 1] and
        truncated (floor) onto the 8-bit grid ``k / 255 · 2 - 1``."""
        d = cs.c_skip * noisy + cs.c_out * out
        if not quantize:
            return d
        return d.clamp(-1, 1).add(1).div(2).mul(255).byte().div(255).mul(2).sub(1)

    def target(self, clean: Tensor, noisy: Tensor, cs: Conditioners) -> Tensor:
        """What ``F`` regresses on: ``(clean - c_skip · noisy) / c_out`` (EDM's loss weight
        ``1 / c_out²`` in ``F``'s units)."""
        return (clean - cs.c_skip * noisy) / cs.c_out

    def add_noise(
        self,
        x: Tensor,
        sigma: Tensor,
        offset: float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``x + offset · ε₁ + σ · ε₂`` for frames ``x [B, C, H, W]``, with ``ε₁ [B, C, 1, 1]``
        drawn first (even when ``offset`` is 0, as the released sampler does)."""
        b, c = x.shape[:2]
        eps1 = torch.randn((b, c, 1, 1), generator=generator, device=x.device, dtype=x.dtype)
        eps2 = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + offset * eps1 + eps2 * _add_dims(sigma, x.ndim)

    def sample_training_sigma(
        self, n: int, device: torch.device | str, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` training noise levels: ``exp(N(loc, scale²))`` clipped to
        ``[train_sigma_min, train_sigma_max]``."""
        s = torch.randn(n, generator=generator, device=device) * self.train_sigma_scale
        return (s + self.train_sigma_loc).exp().clip(self.train_sigma_min, self.train_sigma_max)
