"""``DiamondDenoiser``: DIAMOND's denoiser ``D`` = the network ``F`` (``inner_model``) wrapped
in the preconditioning of :class:`~wmkit.diffusion_world.diamond.DiamondEDM`, with its
training loss (Alonso et al. 2024, arXiv:2405.12399, §3 and App. B; the released
``Denoiser``).

Its state dict is the released ``denoiser.*`` (or ``upsampler.*``) with that prefix stripped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.diffusion_world.diamond.network import DiamondNetwork
from wmkit.diffusion_world.diamond.preconditioning import Conditioners, DiamondEDM

__all__ = ["DenoiserLoss", "DiamondDenoiser"]


@dataclass
class DenoiserLoss:
    """The denoising loss (mean over the autoregressive steps) and its logs."""

    loss: Tensor
    logs: dict[str, Tensor]


class DiamondDenoiser(nn.Module):
    """``D(x; σ, prev_obs, act) = c_skip x + c_out F(c_in x, c_noise, prev_obs / σ_data, act)``.

    Args:
        inner_model: the network ``F``.
        objective: the preconditioning and training noise.
        noise_previous_obs: in training, noise the conditioning frames too, at their own
            random level ``σ_cond`` (CS:GO's next-frame denoiser).
        upsampling_factor: the CS:GO upsampler: conditioned on the previous full-resolution
            frame(s) and on the bicubic upsampling, by this factor, of the low-resolution
            next frame.
    """

    def __init__(
        self,
        inner_model: DiamondNetwork,
        objective: DiamondEDM,
        noise_previous_obs: bool = False,
        upsampling_factor: int | None = None,
    ) -> None:
        super().__init__()
        if (upsampling_factor is not None) != inner_model.upsampler:
            raise ValueError(
                "upsampling_factor must be set exactly when inner_model is an upsampler "
                f"network; got {upsampling_factor} and upsampler={inner_model.upsampler}"
            )
        self.inner_model = inner_model
        self.objective = objective
        self.noise_previous_obs = noise_previous_obs
        self.upsampling_factor = upsampling_factor

    @property
    def num_steps_conditioning(self) -> int:
        return self.inner_model.num_steps_conditioning

    def model_output(
        self, noisy: Tensor, prev_obs: Tensor, act: Tensor | None, cs: Conditioners
    ) -> Tensor:
        """``F`` for the noisy frame ``[B, C, H, W]`` and the conditioning frames
        ``prev_obs [B, k·C, H, W]`` (frame-major, oldest first; for the upsampler, the
        previous full-resolution frame(s) then the upsampled low-resolution next frame)."""
        x_in, obs_in = self.objective.scale_inputs(noisy, prev_obs, cs)
        return self.inner_model(x_in, cs.c_noise, cs.c_noise_cond, obs_in, act)

    @torch.no_grad()
    def denoise(
        self,
        noisy: Tensor,
        sigma: Tensor,
        prev_obs: Tensor,
        act: Tensor | None,
        sigma_cond: Tensor | None = None,
        quantize: bool = True,
    ) -> Tensor:
        """``D`` on the 8-bit grid (``quantize=False``: before clamping and quantising).
        ``sigma``: ``[B]`` or a scalar tensor (moved to ``noisy``'s device)."""
        cs = self.objective.conditioners(sigma.to(noisy.device), sigma_cond)
        out = self.model_output(noisy, prev_obs, act, cs)
        return self.objective.denoised(noisy, out, cs, quantize)

    def upsampled(self, low_res: Tensor) -> Tensor:
        """Bicubic upsampling (``align_corners=False``, no clamp) of low-resolution frames
        ``[B, C, h, w]`` by ``upsampling_factor``: the upsampler's extra input."""
        if self.upsampling_factor is None:
            raise ValueError("upsampled is for an upsampler denoiser (upsampling_factor set)")
        return F.interpolate(low_res, scale_factor=self.upsampling_factor, mode="bicubic")

    def loss(
        self,
        obs: Tensor,
        act: Tensor | None,
        mask: Tensor | None = None,
        low_res: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> DenoiserLoss:
        """DIAMOND's training loss on a clip ``obs [B, n + K, C, H, W]``: for each of the
        ``K`` last frames, in order, draw ``σ``, noise the frame (with offset noise), regress
        ``F`` on its target, and replace the frame by its (quantised) denoised estimate, so
        later steps condition on generated frames (K = 1 for Atari, 4 for CS:GO).

        ``act [B, n + K, ...]`` (action ``t`` taken at frame ``t``; ``None`` for the
        upsampler), ``mask [B, n + K]`` (``False``: padding, left out of the loss),
        ``low_res [B, n + K, C, h, w]``: the upsampler's low-resolution frames.
        """
        b, t = obs.shape[:2]
        n = self.num_steps_conditioning
        steps = t - n
        if obs.ndim != 5 or steps < 1:
            raise ValueError(
                f"obs must be [B, n + K, C, H, W] with n = {n} and K >= 1; got {tuple(obs.shape)}"
            )
        if (self.upsampling_factor is None) != (low_res is None):
            raise ValueError("low_res is required by the upsampler and only by it")
        obj = self.objective
        all_obs = obs.clone()
        total = obs.new_zeros(())
        for i in range(steps):
            prev = rearrange(all_obs[:, i : n + i], "b t c h w -> b (t c) h w")
            target_frame = all_obs[:, n + i]
            prev_act = None if act is None else act[:, i : n + i]
            sigma_cond = None
            if self.noise_previous_obs:
                sigma_cond = obj.sample_training_sigma(b, obs.device, generator)
                prev = obj.add_noise(prev, sigma_cond, obj.sigma_offset_noise, generator)
            if low_res is not None:
                prev = torch.cat([prev, self.upsampled(low_res[:, n + i])], dim=1)
            sigma = obj.sample_training_sigma(b, obs.device, generator)
            noisy = obj.add_noise(target_frame, sigma, obj.sigma_offset_noise, generator)
            cs = obj.conditioners(sigma, sigma_cond)
            out = self.model_output(noisy, prev, prev_act, cs)
            target = obj.target(target_frame, noisy, cs)
            keep = slice(None) if mask is None else mask[:, n + i].bool()
            total = total + F.mse_loss(out[keep], target[keep])
            with torch.no_grad():
                all_obs[:, n + i] = obj.denoised(noisy, out.detach(), cs)
        loss = total / steps
        return DenoiserLoss(loss, {"loss_denoising": loss.detach()})
