"""The per-frame encoder and decoder of :class:`~wmkit.tokenizers.compressive.
CompressiveTokenizer`, optionally cross-attending to a context network's features.

Each is a 2D VQGAN-style stack run on every frame alike (``[B, C, T, H, W]`` in and out,
this package's :class:`~wmkit.tokenizers.blocks.SpatialResBlock` with GroupNorm per frame).
With ``cross_levels > 0`` the deepest ``cross_levels`` resolution levels and the bottleneck
cross-attend (:class:`~wmkit.tokenizers.cross_attention.ContextCrossAttention`) to the
feature at the same point of the context frames' network: iVideoGPT's conditional encoder and
decoder (Wu et al. 2024, §3.1), with its ``max_att_resolution`` expressed as a level count.
Both return the features at every attention point, so a context network's output feeds a
future network's ``context``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.tokenizers.blocks import (
    FrameNorm,
    SpatialDownsample,
    SpatialResBlock,
    SpatialUpsample,
)
from wmkit.tokenizers.causal_conv import FrameConv2d
from wmkit.tokenizers.cross_attention import ContextCrossAttention

__all__ = ["FrameDecoder", "FrameEncoder"]


def _level(width_in: int, width: int, blocks: int, cross: bool, heads: int) -> nn.Module:
    """One resolution level: ``blocks`` resnets to ``width``, then cross-attention if
    ``cross`` (the caller adds the resampling)."""
    level = nn.Module()
    level.blocks = nn.Sequential(
        *[SpatialResBlock(width_in if j == 0 else width, width) for j in range(blocks)]
    )
    level.cross = ContextCrossAttention(width, heads) if cross else None
    return level


def _attend(
    cross: nn.Module | None, h: Tensor, context: list[Tensor] | None, feats: list[Tensor]
) -> Tensor:
    """``h`` after attending to the context feature at its point (``context[len(feats)]``)
    when there is an attention and a context; appended to ``feats``."""
    if cross is not None and context is not None:
        h = cross(h, context[len(feats)])
    feats.append(h)
    return h


class FrameEncoder(nn.Module):
    """Per-frame 2D encoder ``[B, C, T, H, W]`` → ``[B, out, T, H/s, W/s]``; with
    ``cross_levels > 0`` its deepest levels (and the bottleneck) cross-attend to a context
    encoder's features. Returns the output and the features at every attention point."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        blocks: int,
        cross_levels: int,
        heads: int,
    ) -> None:
        super().__init__()
        n = len(widths)
        self.conv_in = FrameConv2d(in_channels, widths[0], 3)
        self.levels = nn.ModuleList()
        width = widths[0]
        for i, w in enumerate(widths):
            level = _level(width, w, blocks, i >= n - cross_levels, heads)
            width = w
            level.down = SpatialDownsample(w) if i < n - 1 else None
            self.levels.append(level)
        self.mid = SpatialResBlock(width, width)
        self.mid_cross = ContextCrossAttention(width, heads) if cross_levels > 0 else None
        self.norm_out = FrameNorm(width)
        self.conv_out = FrameConv2d(width, out_channels, 3)

    def forward(
        self, x: Tensor, context: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        feats: list[Tensor] = []
        h = self.conv_in(x)
        for level in self.levels:
            h = _attend(level.cross, level.blocks(h), context, feats)
            if level.down is not None:
                h = level.down(h)
        h = _attend(self.mid_cross, self.mid(h), context, feats)
        return self.conv_out(F.silu(self.norm_out(h))), feats


class FrameDecoder(nn.Module):
    """Per-frame 2D decoder ``[B, in, T, h, w]`` → ``[B, out, T, h·s, w·s]``, mirror of
    :class:`FrameEncoder` (features listed from the bottleneck up)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        blocks: int,
        cross_levels: int,
        heads: int,
    ) -> None:
        super().__init__()
        n = len(widths)
        width = widths[-1]
        self.conv_in = FrameConv2d(in_channels, width, 3)
        self.mid = SpatialResBlock(width, width)
        self.mid_cross = ContextCrossAttention(width, heads) if cross_levels > 0 else None
        self.levels = nn.ModuleList()
        for i in reversed(range(n)):
            level = _level(width, widths[i], blocks, i >= n - cross_levels, heads)
            width = widths[i]
            level.up = SpatialUpsample(width) if i > 0 else None
            self.levels.append(level)
        self.norm_out = FrameNorm(width)
        self.conv_out = FrameConv2d(width, out_channels, 3)

    def forward(
        self, z: Tensor, context: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        feats: list[Tensor] = []
        h = _attend(self.mid_cross, self.mid(self.conv_in(z)), context, feats)
        for level in self.levels:
            h = _attend(level.cross, level.blocks(h), context, feats)
            if level.up is not None:
                h = level.up(h)
        return self.conv_out(F.silu(self.norm_out(h))), feats
