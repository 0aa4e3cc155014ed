"""``DiamondNetwork``: DIAMOND's next-frame denoising network ``F`` (the released
``inner_model``; Alonso et al. 2024, arXiv:2405.12399, App. C).

It sees the channel concatenation ``[conditioning frames, noisy next frame]`` (frame-major,
oldest first, already scaled by the preconditioning) and a conditioning vector
``cond = MLP(Fourier(c_noise) [+ Fourier(c_noise_cond)] + action embedding)`` that every
residual block reads through adaptive group norm.

- Atari (``main`` branch): ``num_actions`` discrete actions, one ``Embedding(A, cond / n)``
  per conditioning step, flattened in time order.
- CS:GO (``csgo`` branch): ``noise_cond_embedding`` adds the Fourier features of the noise
  level of the (re-noised) conditioning frames; actions may be multi-hot ``[B, n, A]``
  (``act @ E``).
- The CS:GO upsampler (``upsampler=True``): no actions, and one more input frame (the
  bicubic-upsampled low-resolution next frame).

Parameter and buffer names are the released ones with ``denoiser.inner_model.`` (or
``upsampler.inner_model.``) stripped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.diffusion_world.diamond.blocks import FourierFeatures, GroupNorm
from wmkit.diffusion_world.diamond.unet import DiamondUNet

__all__ = ["DIAMOND_NETWORK_SIZES", "DiamondNetwork"]

#: released widths (``atari``: every Atari 100k game; ``csgo`` / ``csgo_upsampler``: the CS:GO
#: model) and a ``tiny`` size for tests
DIAMOND_NETWORK_SIZES: dict[str, dict] = {
    "tiny": {"cond_channels": 32, "depths": [1, 1], "channels": [8, 8], "attn_depths": [0, 0]},
    "atari": {"cond_channels": 256, "depths": [2, 2, 2, 2], "channels": [64, 64, 64, 64],
              "attn_depths": [0, 0, 0, 0]},
    "csgo": {"cond_channels": 2048, "depths": [2, 2, 2, 2], "channels": [128, 256, 512, 1024],
             "attn_depths": [0, 0, 1, 1], "noise_cond_embedding": True},
    "csgo_upsampler": {"cond_channels": 2048, "depths": [2, 2, 2, 2],
                       "channels": [64, 64, 128, 256], "attn_depths": [0, 0, 0, 1],
                       "noise_cond_embedding": True, "upsampler": True,
                       "num_steps_conditioning": 1},
}  # fmt: skip


class DiamondNetwork(nn.Module):
    """DIAMOND's UNet with its input/output convolutions and conditioning embeddings.

    Args:
        img_channels: channels of a frame.
        num_steps_conditioning: conditioning frames (and actions) ``n``.
        cond_channels: width of the conditioning vector (even, divisible by ``n``).
        depths: residual blocks per UNet level.
        channels: width per UNet level.
        attn_depths: per level, whether its blocks end with self-attention (0/1).
        num_actions: discrete actions (or multi-hot width); ``None`` for the upsampler.
        noise_cond_embedding: add the Fourier features of ``c_noise_cond`` (CS:GO).
        upsampler: the CS:GO upsampler: no action embedding, one extra input frame.
    """

    def __init__(
        self,
        img_channels: int = 3,
        num_steps_conditioning: int = 4,
        cond_channels: int = 256,
        depths: list[int] | None = None,
        channels: list[int] | None = None,
        attn_depths: list[int] | None = None,
        num_actions: int | None = None,
        noise_cond_embedding: bool = False,
        upsampler: bool = False,
    ) -> None:
        super().__init__()
        depths = [2, 2, 2, 2] if depths is None else list(depths)
        channels = [64, 64, 64, 64] if channels is None else list(channels)
        attn_depths = [0] * len(channels) if attn_depths is None else list(attn_depths)
        n = num_steps_conditioning
        if upsampler == (num_actions is not None):
            raise ValueError(
                "num_actions is needed for a next-frame network and must be None for the "
                f"upsampler; got num_actions={num_actions}, upsampler={upsampler}"
            )
        if cond_channels % 2 or (not upsampler and cond_channels % n):
            raise ValueError(
                f"cond_channels must be even and divisible by num_steps_conditioning={n}; "
                f"got {cond_channels}"
            )
        self.img_channels, self.num_steps_conditioning = img_channels, n
        self.num_actions, self.upsampler = num_actions, upsampler
        self.noise_emb = FourierFeatures(cond_channels)
        self.noise_cond_emb = FourierFeatures(cond_channels) if noise_cond_embedding else None
        self.act_emb = (
            None
            if upsampler
            else nn.ModuleList([nn.Embedding(int(num_actions), cond_channels // n)])  # type: ignore[arg-type]
        )
        self.cond_proj = nn.Sequential(
            nn.Linear(cond_channels, cond_channels),
            nn.SiLU(),
            nn.Linear(cond_channels, cond_channels),
        )
        in_frames = n + int(upsampler) + 1
        self.conv_in = nn.Conv2d(in_frames * img_channels, channels[0], kernel_size=3, padding=1)
        self.unet = DiamondUNet(cond_channels, depths, channels, attn_depths)
        self.norm_out = GroupNorm(channels[0])
        self.conv_out = nn.Conv2d(channels[0], img_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)

    @property
    def in_frames(self) -> int:
        """Frames in the network input: conditioning (+ upsampled low-res) + the noisy one."""
        return self.num_steps_conditioning + int(self.upsampler) + 1

    def action_embedding(self, act: Tensor) -> Tensor:
        """Actions ``[B, n]`` (ids) or ``[B, n, A]`` (multi-hot 0/1) → ``[B, cond_channels]``."""
        if self.act_emb is None:
            raise ValueError("the upsampler network takes no actions")
        emb = self.act_emb[0]
        n, a = self.num_steps_conditioning, emb.num_embeddings
        if act.ndim == 2 and act.shape[1] == n and not act.is_floating_point():
            if act.numel() and (act.min() < 0 or act.max() >= a):
                raise ValueError(f"act ids must be in [0, {a}); got {act.min()}..{act.max()}")
            e = emb(act)  # [B, n, cond / n]
        elif act.ndim == 3 and tuple(act.shape[1:]) == (n, a):
            if ((act != 0) & (act != 1)).any():
                raise ValueError("multi-hot act must hold only 0 and 1")
            e = act.float() @ emb.weight  # [B, n, cond / n]
        else:
            raise ValueError(
                f"act must be [B, {n}] integer ids or [B, {n}, {a}] multi-hot; got "
                f"{tuple(act.shape)} {act.dtype}"
            )
        return rearrange(e, "b t e -> b (t e)")

    def conditioning(self, c_noise: Tensor, c_noise_cond: Tensor, act: Tensor | None) -> Tensor:
        """``cond_proj(Fourier(c_noise) [+ Fourier(c_noise_cond)] + act_emb)`` ``[B, cond]``."""
        e = self.noise_emb(c_noise)
        if self.noise_cond_emb is not None:
            e = e + self.noise_cond_emb(c_noise_cond)
        if self.act_emb is not None:
            if act is None:
                raise ValueError("act is required by a next-frame network")
            e = e + self.action_embedding(act)
        elif act is not None:
            raise ValueError("the upsampler network takes no actions; got act")
        return self.cond_proj(e)

    def forward(
        self,
        noisy_next_obs: Tensor,
        c_noise: Tensor,
        c_noise_cond: Tensor,
        obs: Tensor,
        act: Tensor | None,
    ) -> Tensor:
        """``F``: the scaled noisy frame ``[B, C, H, W]``, its noise code ``c_noise [B]`` (or
        ``[1]``), the conditioning frames' ``c_noise_cond``, the scaled conditioning frames
        ``obs [B, k·C, H, W]`` and the actions → ``[B, C, H, W]``."""
        want = (self.in_frames - 1) * self.img_channels
        if obs.ndim != 4 or obs.shape[1] != want or noisy_next_obs.ndim != 4:
            raise ValueError(
                f"obs must be [B, {want}, H, W] and noisy_next_obs [B, {self.img_channels}, H, "
                f"W]; got {tuple(obs.shape)} and {tuple(noisy_next_obs.shape)}"
            )
        cond = self.conditioning(c_noise, c_noise_cond, act)  # [B, cond]
        x = self.conv_in(torch.cat([obs, noisy_next_obs], dim=1))
        x = self.unet(x, cond)
        return self.conv_out(F.silu(self.norm_out(x)))
