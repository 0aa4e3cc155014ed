"""The encoder and decoder networks of :class:`~wmkit.tokenizers.vidtok.VidTokTokenizer`
(VidTok, Tang et al. 2024, arXiv:2412.13061, §3.1).

Per resolution level: 2D spatial resnet blocks, each followed by a 1D causal temporal block;
separate spatial (2D, every level) and temporal (AlphaBlender, deepest ``log2 t`` levels)
resampling; a causal 3D bottleneck with optional per-frame attention. Every temporal layer is
a :class:`~wmkit.tokenizers.causal_conv.StreamingModule`, so both networks stream.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.tokenizers.blocks import (
    CausalResBlock3d,
    FrameAttention,
    FrameNorm,
    NormKind,
    SpatialDownsample,
    SpatialResBlock,
    SpatialUpsample,
    TemporalDownsample,
    TemporalResBlock,
    TemporalUpsample,
)
from wmkit.tokenizers.causal_conv import CausalConv3d, StreamingModule

__all__ = ["VidTokDecoder", "VidTokEncoder"]


class VidTokEncoder(nn.Module):
    """``[B, C, T, H, W]`` (T a multiple of ``t`` after first-frame padding) →
    ``[B, out_channels, T / t, H / s, W / s]``.

    ``spatial_levels`` are the resolution levels (0 = full resolution) followed by a 2×
    spatial downsampling, ``temporal_levels`` those of them that also halve time.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        multipliers: list[int],
        blocks: int,
        spatial_levels: list[int],
        temporal_levels: list[int],
        attention: bool,
        temporal_mixing: bool,
        norm: NormKind = "group",
    ) -> None:
        super().__init__()
        kt = 3 if temporal_mixing else 1
        widths = [channels * m for m in multipliers]
        self.conv_in = CausalConv3d(in_channels, widths[0], (kt, 3, 3))
        self.levels = nn.ModuleList()
        width = widths[0]
        for i, w in enumerate(widths):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(blocks):
                level.blocks.append(SpatialResBlock(width, w, norm))
                level.blocks.append(
                    TemporalResBlock(w, norm=norm) if temporal_mixing else nn.Identity()
                )
                width = w
            if i in spatial_levels:
                level.down = SpatialDownsample(width)
                level.time_down = (
                    TemporalDownsample(width) if i in temporal_levels else nn.Identity()
                )
            self.levels.append(level)
        self.mid = nn.Sequential(
            CausalResBlock3d(width, width, kt, norm),
            FrameAttention(width, norm) if attention else nn.Identity(),
            CausalResBlock3d(width, width, kt, norm),
        )
        self.norm_out = FrameNorm(width, norm)
        self.conv_out = CausalConv3d(width, out_channels, (kt, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)  # [B, C0, T, H, W]
        for level in self.levels:
            for block in level.blocks:
                h = block(h)
            if hasattr(level, "down"):
                h = level.time_down(level.down(h))  # [B, C, T (/2), H/2, W/2]
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, out, T/t, h, w]


class VidTokDecoder(nn.Module):
    """``[B, in_channels, T', h, w]`` → ``[B, out_channels, T'·t, h·s, w·s]`` (mirror of the
    encoder, one more resnet block per level as in VidTok).

    ``spatial_levels`` are the resolution levels (``levels[k]`` is level ``n - 1 - k``)
    followed by a 2× spatial upsampling, ``temporal_levels`` those of them that also double
    time; ``temporal_upsample`` picks its interpolation
    (:class:`~wmkit.tokenizers.blocks.TemporalUpsample`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        multipliers: list[int],
        blocks: int,
        spatial_levels: list[int],
        temporal_levels: list[int],
        attention: bool,
        temporal_mixing: bool,
        norm: NormKind = "group",
        temporal_upsample: Literal["nearest", "trilinear"] = "nearest",
    ) -> None:
        super().__init__()
        kt = 3 if temporal_mixing else 1
        widths = [channels * m for m in multipliers]
        n_levels = len(widths)
        width = widths[-1]
        self.conv_in = CausalConv3d(in_channels, width, (kt, 3, 3))
        self.mid = nn.Sequential(
            CausalResBlock3d(width, width, kt, norm),
            FrameAttention(width, norm) if attention else nn.Identity(),
            CausalResBlock3d(width, width, kt, norm),
        )
        self.levels = nn.ModuleList()
        first_frames = 1
        for i in reversed(range(n_levels)):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(blocks + 1):
                level.blocks.append(SpatialResBlock(width, widths[i], norm))
                width = widths[i]
                level.blocks.append(
                    TemporalResBlock(width, norm=norm) if temporal_mixing else nn.Identity()
                )
            if i in spatial_levels:
                level.up = SpatialUpsample(width)
                level.time_up = nn.Identity()
                if i in temporal_levels:
                    level.time_up = TemporalUpsample(width, temporal_upsample, first_frames)
                    first_frames *= 2
            self.levels.append(level)
        self.norm_out = FrameNorm(width, norm)
        self.conv_out = CausalConv3d(width, out_channels, (kt, 3, 3))

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))  # [B, C, T', h, w]
        for level in self.levels:
            for block in level.blocks:
                h = block(h)
            if hasattr(level, "up"):
                h = level.time_up(level.up(h))  # [B, C, T' (·2), 2h, 2w]
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, out, T'·t, H, W]

    def set_cache_offset(self, latent_frames: int) -> None:
        """Keep the last ``latent_frames`` latent frames of each chunk out of every causal
        cache (each module's offset counts frames at its own frame rate), so a chunk can be
        fed with a look-ahead whose output is dropped; ``0`` switches this off."""
        rate = 1
        for part in (self.conv_in, self.mid):
            _offset(part, latent_frames * rate)
        for level in self.levels:
            _offset(level.blocks, latent_frames * rate)
            if isinstance(getattr(level, "time_up", None), TemporalUpsample):
                rate *= 2
                _offset(level.time_up, latent_frames * rate)
        _offset(self.conv_out, latent_frames * rate)


def _offset(module: nn.Module, frames: int) -> None:
    for m in module.modules():
        if isinstance(m, StreamingModule):
            m.cache_offset = frames
