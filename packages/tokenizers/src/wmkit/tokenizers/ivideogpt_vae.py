"""The per-frame encoder and decoder of iVideoGPT's tokenizer, plain or conditioned on
context frames by cross-attention (Wu et al. 2024, §3.1; thuml/iVideoGPT's ``Encoder`` /
``Decoder`` and ``ConditionalEncoder`` / ``ConditionalDecoder``, which extend diffusers' VAE).

Both return their intermediate feature maps: the plain encoder the output of each down
block, the plain decoder the bottleneck output and the output of each up block. The
conditional versions (``context=`` a :class:`ContextAttention`) cross-attend to those maps
of the context frames wherever the map is at most ``max_resolution`` pixels wide: the
encoder after each such down block, the decoder after its bottleneck and after each such up
block. Which levels attend is fixed at construction from the frame ``resolution`` (the
position embeddings are sized for it), as in the original, where the decoder side starts from
the latent grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.tokenizers.ivideogpt_blocks import NORM_EPS, DownEncoderBlock, MidBlock, UpDecoderBlock
from wmkit.tokenizers.ivideogpt_cross_attention import StackedContextAttention

__all__ = ["ContextAttention", "FeatureDecoder", "FeatureEncoder"]


@dataclass(frozen=True)
class ContextAttention:
    """Where and how a conditional encoder / decoder cross-attends to context features.

    Attributes:
        resolution: frame height = width at the encoder input (the decoder derives its latent
            grid from it).
        max_resolution: feature maps at most this wide get cross-attention.
        context_frames: context frames stacked as keys and values.
        heads: attention heads.
        groups: GroupNorm groups of the attention norms.
        dropout: attention dropout in training.
    """

    resolution: int
    max_resolution: int
    context_frames: int
    heads: int = 4
    groups: int = 32
    dropout: float = 0.1

    def block(self, channels: int, resolution: int) -> StackedContextAttention:
        return StackedContextAttention(
            channels, resolution, self.context_frames, self.heads, self.groups, self.dropout
        )

    def blocks(
        self, widths: list[int], resolutions: list[int]
    ) -> tuple[tuple[int, ...], list[StackedContextAttention]]:
        """For feature maps of ``widths[i]`` channels ``resolutions[i]`` pixels wide: the
        indices of those that get cross-attention (at most ``max_resolution`` wide) and
        their attention blocks."""
        levels = [i for i, res in enumerate(resolutions) if res <= self.max_resolution]
        return tuple(levels), [self.block(widths[i], resolutions[i]) for i in levels]


class FeatureEncoder(nn.Module):
    """Frame ``[N, C_in, H, W]`` → latent ``[N, C_out, H/s, W/s]`` (``s = 2^(levels-1)``),
    plus the output of each down block.

    Args:
        in_channels: pixel channels.
        out_channels: latent channels.
        widths: channels of each level (diffusers' ``block_out_channels``).
        layers: resnets per level.
        groups: GroupNorm groups.
        mid_attention: self-attention in the bottleneck.
        context: cross-attention to context features (``None``: a plain encoder).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        layers: int,
        groups: int,
        mid_attention: bool,
        context: ContextAttention | None = None,
    ) -> None:
        super().__init__()
        n = len(widths)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock(widths[max(i - 1, 0)], widths[i], layers, groups, i < n - 1)
            for i in range(n)
        )
        self.mid_block = MidBlock(widths[-1], groups, mid_attention)
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        #: indices of the down blocks followed by cross-attention
        self.attend_after: tuple[int, ...] = ()
        if context is not None:
            # down block i ends at resolution / 2^(i+1); the last one does not downsample
            sizes = [context.resolution // 2 ** min(i + 1, n - 1) for i in range(n)]
            self.attend_after, blocks = context.blocks(widths, sizes)
            self.cross_att_blocks = nn.ModuleList(blocks)

    def forward(
        self, x: Tensor, context: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """``context``: the plain encoder's down-block features of the context frames, each
        ``[B, T0, C_i, H_i, W_i]`` (required by a conditional encoder)."""
        if self.attend_after and context is None:
            raise ValueError("a conditional encoder needs the context frames' features")
        features = []
        h = self.conv_in(x)
        for i, block in enumerate(self.down_blocks):
            h = block(h)
            if i in self.attend_after:
                h = self.cross_att_blocks[self.attend_after.index(i)](h, context[i])  # type: ignore[index]
            features.append(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h))), features


class FeatureDecoder(nn.Module):
    """Latent ``[N, C_in, h, w]`` → frame ``[N, C_out, h·s, w·s]``, plus the bottleneck
    output and the output of each up block.

    Args: as :class:`FeatureEncoder`'s, with ``in_channels`` the latent channels,
    ``out_channels`` the pixel channels, ``widths`` full resolution first (as the encoder's)
    and ``layers + 1`` resnets per up block; ``context=None`` makes a plain decoder.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        layers: int,
        groups: int,
        mid_attention: bool,
        context: ContextAttention | None = None,
    ) -> None:
        super().__init__()
        n = len(widths)
        rev = list(reversed(widths))
        self.conv_in = nn.Conv2d(in_channels, rev[0], 3, padding=1)
        self.mid_block = MidBlock(rev[0], groups, mid_attention)
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock(rev[max(i - 1, 0)], rev[i], layers + 1, groups, i < n - 1)
            for i in range(n)
        )
        self.conv_norm_out = nn.GroupNorm(groups, widths[0], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        #: indices of the up blocks followed by cross-attention (the bottleneck always is)
        self.attend_after: tuple[int, ...] = ()
        if context is not None:
            # the bottleneck is at the latent grid; up block i ends at 2^(i+1) times it (the
            # last one does not upsample)
            latent = context.resolution // 2 ** (n - 1)
            sizes = [latent * 2 ** min(i + 1, n - 1) for i in range(n)]
            mid = context.block(rev[0], latent)
            self.attend_after, blocks = context.blocks(rev, sizes)
            self.cross_att_blocks = nn.ModuleList([mid, *blocks])

    @property
    def conditional(self) -> bool:
        return hasattr(self, "cross_att_blocks")

    def forward(
        self, z: Tensor, context: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """``context``: the plain decoder's features of the context frames (bottleneck,
        then each up block), each ``[B, T0, C_i, H_i, W_i]`` (required by a conditional
        decoder)."""
        if self.conditional and context is None:
            raise ValueError("a conditional decoder needs the context frames' features")
        h = self.mid_block(self.conv_in(z))
        if self.conditional:
            h = self.cross_att_blocks[0](h, context[0])  # type: ignore[index]
        features = [h]
        for i, block in enumerate(self.up_blocks):
            h = block(h)
            if i in self.attend_after:
                h = self.cross_att_blocks[1 + self.attend_after.index(i)](h, context[i + 1])  # type: ignore[index]
            features.append(h)
        return self.conv_out(F.silu(self.conv_norm_out(h))), features
