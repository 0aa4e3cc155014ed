"""EDM preconditioning (Karras et al. 2022) with a noise level per frame, and its sampler.

The denoiser is ``D(y; σ) = c_skip(σ) y + c_out(σ) F(c_in(σ) y, c_noise(σ))`` with
``c_skip = σd² / (σ² + σd²)``, ``c_out = σ σd / sqrt(σ² + σd²)``, ``c_in = 1 / sqrt(σ² + σd²)``
(``σd`` = ``sigma_data``), as DIAMOND (Alonso et al. 2024, eloialonso/diamond) uses for its
Atari / CS:GO world models. Training draws ``ln σ ~ N(p_mean, p_std²)`` independently per
frame (Diffusion Forcing) and regresses ``F`` on ``(y - c_skip y_noisy) / c_out``, which is
EDM's loss weighting ``λ(σ) = 1 / c_out²`` written in ``F``'s units.

Where we differ: EDM feeds ``c_noise = ln(σ) / 4`` to the network; our networks embed a
per-frame *timestep* in ``[0, 1000)`` (sinusoids, as diffusers' ``Timesteps``), so
:func:`sigma_to_level` maps ``ln σ`` affinely from ``[ln SIGMA_LO, ln SIGMA_HI]`` onto that
range (clean frames, σ = 0, land on level 0) — the same monotone information, in the units
the embeddings were designed for.

Sampling (:class:`EDMNextFrameSampler`) uses diffusers' ``EDMEulerScheduler`` (Karras sigma
schedule, first-order Euler, the DIAMOND choice) for the newest frame while the history stays
clean (σ = 0); the model computes ``D`` itself (its preconditioning is per frame) and hands
it to the scheduler as ``pred_original_sample``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers import EDMEulerScheduler
from torch import Tensor

from wmkit.diffusion_world.sampler import FrameSampler

__all__ = [
    "SIGMA_HI",
    "SIGMA_LO",
    "EDMNextFrameSampler",
    "edm_scalings",
    "sample_training_sigmas",
    "sigma_to_level",
]

SIGMA_LO = 0.002
SIGMA_HI = 80.0


def edm_scalings(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in)`` for noise levels ``sigma`` (any shape, >= 0)."""
    var = sigma.square() + sigma_data**2
    return sigma_data**2 / var, sigma * sigma_data / var.sqrt(), 1 / var.sqrt()


def sigma_to_level(sigma: Tensor) -> Tensor:
    """Noise levels ``σ`` → the network's timestep input in ``[0, 999]`` (float, log-affine)."""
    lo, hi = math.log(SIGMA_LO), math.log(SIGMA_HI)
    s = sigma.clamp(SIGMA_LO, SIGMA_HI).log()
    return (s - lo) / (hi - lo) * 999.0


def sample_training_sigmas(
    shape: tuple[int, ...], p_mean: float, p_std: float, device: torch.device | str
) -> Tensor:
    """EDM's training distribution ``ln σ ~ N(p_mean, p_std²)``, one level per entry."""
    return (torch.randn(shape, device=device) * p_std + p_mean).exp()


class EDMNextFrameSampler(FrameSampler):
    """Samples frame ``t`` given clean frames ``< t`` with diffusers' ``EDMEulerScheduler``.

    ``denoise(x [B, T, C, H, W], sigmas [B, T], cond [B, T, D])`` must return the *denoised*
    frames ``D`` (EDM-preconditioned). Causal action guidance is applied to ``D``.

    Args:
        sigma_min: smallest noise level of the Karras schedule.
        sigma_max: largest noise level (the newest frame starts from ``N(0, sigma_max²)``).
        sigma_data: the data's standard deviation (for the scheduler's bookkeeping).
        rho: Karras schedule exponent.
        num_steps: denoising steps per frame (1 step returns ``D`` at ``sigma_max``).
        guidance_scale: causal action guidance scale.
    """

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 5.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        num_steps: int = 3,
        guidance_scale: float = 1.0,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1; got {num_steps}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}"
            )
        with torch.device("cpu"):  # its sigma tables are data, also when models build on meta
            self.scheduler = EDMEulerScheduler(
                sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data, rho=rho
            )
        self.num_steps = num_steps
        self.guidance_scale = float(guidance_scale)

    def initial(self, noise: Tensor) -> Tensor:
        return noise * self.scheduler.sigmas[0].to(noise.device)

    def denoise_step(
        self, next_frame: Callable[[Tensor, float], Tensor], i: int, t: Tensor, x: Tensor
    ) -> Tensor:
        # diffusers' bookkeeping (step index); the model preconditions each frame itself
        self.scheduler.scale_model_input(x, t)
        d = next_frame(x, float(self.scheduler.sigmas[i]))
        return self.scheduler.step(d, t, x, pred_original_sample=d).prev_sample
