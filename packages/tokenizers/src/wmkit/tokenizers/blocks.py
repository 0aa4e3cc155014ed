"""Building blocks of causal video autoencoders (VidTok-style; shared by every tokenizer here).

All blocks take and return ``[B, C, T, H, W]``. Normalisation never mixes frames (GroupNorm
over ``C, H, W`` of each frame, wmkit's default, or LayerNorm over ``C`` at each position,
as in the released VidTok models), so no statistic leaks information from future frames;
every temporal operation is a :class:`~wmkit.tokenizers.causal_conv.StreamingModule` so
whole networks stream chunk by chunk.

VidTok (Tang et al. 2024, §3.1) factorises the 3D backbone: 2D spatial resnet blocks
(per frame) interleaved with 1D temporal blocks, separate spatial and temporal
down/up-sampling, and an ``AlphaBlender`` (a learned sigmoid gate) that mixes a
parameter-free temporal resampler (average pool / nearest repeat) with a learned causal
convolution. We follow that structure.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.tokenizers.causal_conv import CausalConv3d, FrameConv2d, StreamingModule

__all__ = [
    "AlphaBlender",
    "CausalResBlock3d",
    "FrameAttention",
    "FrameNorm",
    "NormKind",
    "SpatialDownsample",
    "SpatialResBlock",
    "SpatialUpsample",
    "TemporalDownsample",
    "TemporalResBlock",
    "TemporalUpsample",
    "num_groups",
]


#: ``"group"``: GroupNorm over each frame's ``C, H, W``; ``"layer"``: LayerNorm over ``C``.
NormKind = Literal["group", "layer"]


def num_groups(channels: int, max_groups: int = 32) -> int:
    """The largest group count ``<= max_groups`` that divides ``channels``."""
    return math.gcd(channels, max_groups)


class FrameNorm(nn.Module):
    """Normalisation that never mixes frames of ``[B, C, T, H, W]`` (causal).

    Args:
        channels: channels ``C``.
        kind: ``"group"`` (GroupNorm over each frame's ``C, H, W``) or ``"layer"``
            (LayerNorm over ``C`` at every position, VidTok's ``norm_type: layernorm``).
    """

    def __init__(self, channels: int, kind: NormKind = "group") -> None:
        super().__init__()
        if kind not in ("group", "layer"):
            raise ValueError(f"norm kind must be 'group' or 'layer'; got {kind!r}")
        self.kind = kind
        self.norm: nn.Module = (
            nn.GroupNorm(num_groups(channels), channels, eps=1e-6)
            if kind == "group"
            else nn.LayerNorm(channels, eps=1e-6)
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "layer":
            y = self.norm(rearrange(x, "b c t h w -> b t h w c"))
            return rearrange(y, "b t h w c -> b c t h w")
        b = x.shape[0]
        y = self.norm(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


class AlphaBlender(nn.Module):
    """``sigmoid(a)·x + (1 - sigmoid(a))·y`` with a learned scalar ``a`` (VidTok's AlphaBlender).

    Args:
        init: initial logit (VidTok starts at 2, i.e. mostly the parameter-free branch).
    """

    def __init__(self, init: float = 2.0) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor([float(init)]))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        alpha = torch.sigmoid(self.logit).to(x.dtype)
        return alpha * x + (1 - alpha) * y


class SpatialResBlock(nn.Module):
    """Pre-norm resnet block of per-frame 3×3 2D convolutions."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "group") -> None:
        super().__init__()
        self.norm1 = FrameNorm(in_channels, norm)
        self.conv1 = FrameConv2d(in_channels, out_channels, 3)
        self.norm2 = FrameNorm(out_channels, norm)
        self.conv2 = FrameConv2d(out_channels, out_channels, 3)
        self.skip = (
            FrameConv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class TemporalResBlock(nn.Module):
    """Resnet block of causal temporal convolutions (kernel ``(3, 1, 1)``: each pixel's time
    series), zero-initialised so it starts as the identity (VidTok's 1D temporal blocks)."""

    def __init__(self, channels: int, kernel: int = 3, norm: NormKind = "group") -> None:
        super().__init__()
        self.norm1 = FrameNorm(channels, norm)
        self.conv1 = CausalConv3d(channels, channels, (kernel, 1, 1))
        self.norm2 = FrameNorm(channels, norm)
        self.conv2 = CausalConv3d(channels, channels, (kernel, 1, 1))
        nn.init.zeros_(self.conv2.conv.weight)
        nn.init.zeros_(self.conv2.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class CausalResBlock3d(nn.Module):
    """Resnet block of causal 3×3×3 convolutions (the bottleneck blocks); ``temporal_kernel=1``
    makes it per-frame."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temporal_kernel: int = 3,
        norm: NormKind = "group",
    ) -> None:
        super().__init__()
        k = (temporal_kernel, 3, 3)
        self.norm1 = FrameNorm(in_channels, norm)
        self.conv1 = CausalConv3d(in_channels, out_channels, k)
        self.norm2 = FrameNorm(out_channels, norm)
        self.conv2 = CausalConv3d(out_channels, out_channels, k)
        self.skip = (
            CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class FrameAttention(nn.Module):
    """Single-head self-attention over the positions of each frame (no attention across time,
    so it is causal), via ``scaled_dot_product_attention`` (scale ``1/sqrt(C)``). VidTok
    projects with four 1×1×1 convolutions; ``qkv`` holds its q, k, v weights stacked."""

    def __init__(self, channels: int, norm: NormKind = "group") -> None:
        super().__init__()
        self.norm = FrameNorm(channels, norm)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, _, t, h, w = x.shape
        y = rearrange(self.norm(x), "b c t h w -> (b t) (h w) c")
        q, k, v = self.qkv(y).chunk(3, dim=-1)  # [(B T), N, C] each
        y = self.out(F.scaled_dot_product_attention(q, k, v))  # [(B T), N, C]
        return x + rearrange(y, "(b t) (h w) c -> b c t h w", b=b, t=t, h=h, w=w)


class SpatialDownsample(nn.Module):
    """Per-frame 2× spatial downsampling: stride-2 3×3 conv with (0, 1, 0, 1) padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, pre_pad=(0, 1, 0, 1))  # [B, C, T, H/2, W/2]


class SpatialUpsample(nn.Module):
    """Per-frame 2× spatial upsampling: nearest neighbour then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)  # [B, C, T, 2H, 2W]
        return self.conv(x)


class TemporalDownsample(StreamingModule):
    """Causal 2× temporal downsampling: AlphaBlender of a causal average pool (kernel 3,
    stride 2, one past frame of padding) and a causal stride-2 3×3×3 convolution.

    Output ``i`` depends on inputs ``<= 2i + 1``, so a group of ``2^n`` frames maps to one
    frame after ``n`` of these.
    """

    time_pad = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, 3, stride=(2, 1, 1))
        self.blend = AlphaBlender()

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.avg_pool3d(self.pad_past(x), (3, 1, 1), stride=(2, 1, 1))  # [B, C, T/2, H, W]
        return self.blend(pooled, self.conv(x))


class TemporalUpsample(StreamingModule):
    """2× temporal upsampling: AlphaBlender of an interpolation and a causal 3×3×3 conv of it.

    ``mode="nearest"`` repeats every frame (VidTok v1.0, wmkit's default): output frame ``i``
    depends on inputs ``<= i // 2``. ``mode="trilinear"`` (VidTok v1.1) interpolates linearly
    in time (``align_corners=False``), so output ``2i + 1`` also sees input ``i + 1``: it looks
    one frame ahead. As in VidTok v1.1, the first chunk's (or whole pass's) first
    ``first_frames`` frames are interpolated on their own, and a later chunk is interpolated
    after ``first_frames`` cached frames of the previous one, whose outputs are dropped; the
    cache follows VidTok's rule (the first chunk keeps its last ``first_frames`` frames, a
    later one the ``first_frames`` before those), which assumes chunks overlapping the next
    one by ``first_frames`` frames (see ``VidTokTokenizer.decode_chunks``).

    Args:
        channels: channels.
        mode: ``"nearest"`` or ``"trilinear"``.
        first_frames: frames treated on their own on the first chunk (1 at the first
            upsampling of a decoder, 2 at the second, …; ``"trilinear"`` only).
    """

    def __init__(
        self,
        channels: int,
        mode: Literal["nearest", "trilinear"] = "nearest",
        first_frames: int = 1,
    ) -> None:
        super().__init__()
        if mode not in ("nearest", "trilinear"):
            raise ValueError(f"temporal upsampling must be 'nearest' or 'trilinear'; got {mode!r}")
        self.mode = mode
        self.first_frames = first_frames
        self.conv = CausalConv3d(channels, channels, 3)
        self.blend = AlphaBlender()

    def _interpolate(self, x: Tensor) -> Tensor:
        y = F.interpolate(x.float(), scale_factor=(2.0, 1.0, 1.0), mode="trilinear")
        return y.to(x.dtype)  # [B, C, 2T, H, W]

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "nearest":
            x = x.repeat_interleave(2, dim=2)  # [B, C, 2T, H, W]
        else:
            n = self.first_frames
            if self.first_chunk:
                head, rest = x[:, :, :n], x[:, :, n:]
                if self._streaming:
                    self._cache = x[:, :, -n:].detach()
                parts = [self._interpolate(head)]
                if rest.shape[2]:
                    parts.append(self._interpolate(rest))
                x = torch.cat(parts, dim=2)  # [B, C, 2T, H, W]
            else:
                x = torch.cat([self._cache, x], dim=2)
                self._cache = x[:, :, -2 * n : -n].detach()
                x = self._interpolate(x)[:, :, 2 * n :]  # [B, C, 2T, H, W]
        return self.blend(x, self.conv(x))
