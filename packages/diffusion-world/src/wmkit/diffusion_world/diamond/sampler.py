"""``DiamondSampler``: DIAMOND's next-frame sampler (Alonso et al. 2024, arXiv:2405.12399,
§3; the released ``DiffusionSampler``), Karras et al.'s (2022) Algorithm 2 with DIAMOND's
choices:

- the schedule ``σ_i = (σmax^{1/ρ} + i/(N-1) (σmin^{1/ρ} - σmax^{1/ρ}))^ρ`` is computed in
  float32, with 0 appended;
- the initial ``x`` is *unit-variance* noise (not ``σmax · ε``);
- with churn, ``γ = min(s_churn / N, √2 - 1)`` where ``s_tmin ≤ σ ≤ s_tmax``, ``x`` gains
  ``s_noise · ε · sqrt(σ̂² - σ²)``, but ``D`` is still evaluated at ``σ`` (not ``σ̂``);
- Euler (``order=1``) or Heun (``order=2``, not on the last step);
- CS:GO's ``s_cond > 0`` re-noises the conditioning frames at every step, *cumulatively*
  (``prev += s_cond · ε``, after an offset draw that is multiplied by 0), and passes
  ``σ_cond = s_cond`` to the denoiser;
- the last step computes ``x + d · dt`` (≈ D, on the 8-bit grid up to float rounding) rather
  than returning ``D``.

Random draws come, in the released order, from ``generator`` (``None``: torch's global
generator), so a seeded generator reproduces a recorded sample.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from wmkit.diffusion_world.diamond.denoiser import DiamondDenoiser

__all__ = ["DiamondSample", "DiamondSampler", "DiamondSamplerConfig", "build_sigmas"]


@dataclass
class DiamondSamplerConfig:
    """Settings of :class:`DiamondSampler` (defaults: the released Atari sampler).

    Args:
        num_steps_denoising: denoising steps ``N``.
        sigma_min: smallest non-zero σ of the schedule.
        sigma_max: largest σ.
        rho: the schedule's ρ.
        order: 1 (Euler) or 2 (Heun).
        s_churn: stochasticity (0: deterministic after the initial noise).
        s_tmin: churn only for σ ≥ this.
        s_tmax: churn only for σ ≤ this (``None``: no upper bound).
        s_noise: scale of the churn noise.
        s_cond: CS:GO: noise level the conditioning frames are re-noised with at each step.
    """

    num_steps_denoising: int = 3
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    order: int = 1
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float | None = None
    s_noise: float = 1.0
    s_cond: float = 0.0

    def __post_init__(self) -> None:
        if self.num_steps_denoising < 1 or self.order not in (1, 2):
            raise ValueError(
                f"DiamondSamplerConfig needs num_steps_denoising >= 1 and order 1 or 2; got "
                f"{self.num_steps_denoising}, {self.order}"
            )
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"DiamondSamplerConfig needs 0 < sigma_min <= sigma_max; got {self.sigma_min}, "
                f"{self.sigma_max}"
            )
        if self.s_tmax is not None and math.isinf(self.s_tmax):
            self.s_tmax = None  # JSON has no infinity: None means no upper bound
        if self.s_churn < 0 or self.s_cond < 0:
            raise ValueError(f"s_churn and s_cond must be >= 0; got {self.s_churn}, {self.s_cond}")


@dataclass
class DiamondSample:
    """A sampled frame ``next_obs [B, C, H, W]`` and the trajectory ``[B, N + 1, C, H, W]``
    (the initial noise, then ``x`` after each step)."""

    next_obs: Tensor
    trajectory: Tensor


def build_sigmas(
    num_steps: int, sigma_min: float, sigma_max: float, rho: float, device: torch.device | str
) -> Tensor:
    """Karras et al.'s schedule in float32, with 0 appended ``[num_steps + 1]``."""
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    ramp = torch.linspace(0, 1, num_steps, device=device)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


class DiamondSampler:
    """Samples a next frame from a :class:`DiamondDenoiser` (``DiffusionSampler(denoiser,
    cfg)``)."""

    def __init__(self, denoiser: DiamondDenoiser, config: DiamondSamplerConfig) -> None:
        self.denoiser = denoiser
        self.config = config

    def sigmas(self, device: torch.device | str) -> Tensor:
        c = self.config
        return build_sigmas(c.num_steps_denoising, c.sigma_min, c.sigma_max, c.rho, device)

    @torch.no_grad()
    def sample(
        self,
        prev_obs: Tensor,
        prev_act: Tensor | None,
        generator: torch.Generator | None = None,
    ) -> DiamondSample:
        """A next frame given the conditioning frames ``prev_obs [B, k, C, H, W]`` (oldest
        first; for the upsampler, the previous full-resolution frame(s) then the upsampled
        low-resolution next frame) and actions ``prev_act`` (``[B, n]`` ids or ``[B, n, A]``
        multi-hot; ``None`` for the upsampler)."""
        cfg = self.config
        if prev_obs.ndim != 5:
            raise ValueError(f"prev_obs must be [B, k, C, H, W]; got {tuple(prev_obs.shape)}")
        b, _, c, h, w = prev_obs.shape
        device, dtype = prev_obs.device, prev_obs.dtype
        prev = rearrange(prev_obs, "b t c h w -> b (t c) h w")
        # the schedule and its scalar arithmetic stay on the CPU (as 0-d float32 tensors, the
        # released arithmetic): the branches on σ then never wait for the accelerator
        sigmas = self.sigmas("cpu")
        s_in = torch.ones(b, device=device)
        gamma_ = min(cfg.s_churn / (len(sigmas) - 1), 2**0.5 - 1)
        s_tmax = math.inf if cfg.s_tmax is None else cfg.s_tmax
        x = torch.randn((b, c, h, w), generator=generator, device=device, dtype=dtype)
        trajectory = [x]
        obj = self.denoiser.objective
        for sigma, next_sigma in itertools.pairwise(sigmas):
            gamma = gamma_ if cfg.s_tmin <= sigma <= s_tmax else 0
            sigma_hat = sigma * (gamma + 1)
            if gamma > 0:
                eps = torch.randn(x.shape, generator=generator, device=device, dtype=dtype)
                x = x + eps * cfg.s_noise * (sigma_hat**2 - sigma**2) ** 0.5
            sigma_cond = None
            if cfg.s_cond > 0:
                sigma_cond = torch.full((b,), cfg.s_cond, device=device)
                prev = obj.add_noise(prev, sigma_cond, 0, generator)
            denoised = self.denoiser.denoise(x, sigma, prev, prev_act, sigma_cond)
            d = (x - denoised) / sigma_hat
            dt = next_sigma - sigma_hat
            if cfg.order == 1 or next_sigma == 0:
                x = x + d * dt
            else:
                x_2 = x + d * dt
                denoised_2 = self.denoiser.denoise(
                    x_2, next_sigma * s_in, prev, prev_act, sigma_cond
                )
                d_2 = (x_2 - denoised_2) / next_sigma
                x = x + (d + d_2) / 2 * dt
            trajectory.append(x)
        return DiamondSample(x, torch.stack(trajectory, dim=1))
