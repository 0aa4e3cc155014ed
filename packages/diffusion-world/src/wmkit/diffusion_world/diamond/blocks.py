"""The building blocks of DIAMOND's UNet (Alonso et al. 2024, arXiv:2405.12399, App. C):
adaptive group norm, the conditioned residual block, 2D self-attention, Fourier features of
the noise level, and the 2x resamplers.

Attribute names follow the released checkpoints (``norm1.linear``, ``attn.qkv_proj``,
``norm.norm``, ...) so their state dicts load with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "GROUP_SIZE",
    "HEAD_DIM",
    "AdaGroupNorm",
    "Downsample",
    "FourierFeatures",
    "GroupNorm",
    "ResBlock",
    "ResBlocks",
    "SelfAttention2d",
    "Upsample",
]

#: channels per GroupNorm group (``groups = max(1, C // GROUP_SIZE)``)
GROUP_SIZE = 32
#: channels per attention head (``heads = max(1, C // HEAD_DIM)``)
HEAD_DIM = 8
_EPS = 1e-5


def _groups(channels: int) -> int:
    return max(1, channels // GROUP_SIZE)


class GroupNorm(nn.Module):
    """An affine ``nn.GroupNorm`` held as ``.norm`` (the released key layout)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, eps=_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class AdaGroupNorm(nn.Module):
    """Group norm without affine parameters, then ``x (1 + scale) + shift`` with
    ``[scale | shift] = linear(cond)`` (scale first): how the noise level and the actions
    condition every residual block."""

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.linear = nn.Linear(cond_channels, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.group_norm(x, _groups(self.channels), eps=_EPS)
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, dim=1)  # [B, C, 1, 1] each
        return x * (1 + scale) + shift


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map.

    Quirk kept from DIAMOND: the residual adds the *normalized* input, ``norm(x) +
    out_proj(attn(norm(x)))``, not ``x``. The qkv channels are ``[q heads | k heads | v
    heads]``, ``HEAD_DIM`` contiguous channels per head. The attention is written out
    (``softmax(q kᵀ / √d) v``) rather than through ``scaled_dot_product_attention``, whose
    kernels round differently: it only runs at the UNet's lowest resolutions, and written out
    it matches the released model bit for bit, which keeps sampled (8-bit) frames identical.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // HEAD_DIM)
        if channels % self.heads:
            raise ValueError(f"attention needs channels divisible by {self.heads}; got {channels}")
        self.norm = GroupNorm(channels)
        self.qkv_proj = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.out_proj = nn.Conv2d(channels, channels, kernel_size=1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.norm(x)
        qkv = rearrange(self.qkv_proj(x), "b (k n d) h w -> k b n (h w) d", k=3, n=self.heads)
        q, k, v = qkv.contiguous()  # [B, heads, HW, d] each
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # [B, heads, HW, HW]
        y = att.softmax(dim=-1) @ v  # [B, heads, HW, d]
        y = rearrange(y, "b n (h w) d -> b (n d) h w", h=h, w=w)
        return x + self.out_proj(y)


class FourierFeatures(nn.Module):
    """``[cos(2π c W), sin(2π c W)]`` of a scalar per sample, with fixed random frequencies
    ``W`` (a buffer ``weight [1, dim / 2]``, saved with the model)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"FourierFeatures needs an even dim; got {dim}")
        self.register_buffer("weight", torch.randn(1, dim // 2))

    def forward(self, c: Tensor) -> Tensor:
        if c.ndim != 1:
            raise ValueError(f"FourierFeatures takes a vector [B]; got shape {tuple(c.shape)}")
        f = 2 * math.pi * c[:, None] @ self.weight  # [B, dim / 2]
        return torch.cat([f.cos(), f.sin()], dim=-1)


class Downsample(nn.Module):
    """3x3 stride-2 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        nn.init.orthogonal_(self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """``x + conv2(silu(AdaGN2(conv1(silu(AdaGN1(x))))))`` (a 1x1 ``proj`` on the skip when
    the width changes), then optional self-attention. ``conv2`` starts at zero."""

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, attn: bool) -> None:
        super().__init__()
        self.proj: nn.Module = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.norm1 = AdaGroupNorm(in_channels, cond_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = AdaGroupNorm(out_channels, cond_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.attn: nn.Module = SelfAttention2d(out_channels) if attn else nn.Identity()
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        r = self.proj(x)
        x = self.conv1(F.silu(self.norm1(x, cond)))
        x = self.conv2(F.silu(self.norm2(x, cond)))
        return self.attn(x + r)


class ResBlocks(nn.Module):
    """A stack of :class:`ResBlock`; each may first concatenate a skip tensor (the UNet's up
    path). Returns the last output and every block's output."""

    def __init__(
        self, in_channels: list[int], out_channels: list[int], cond_channels: int, attn: bool
    ) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResBlock(i, o, cond_channels, attn) for i, o in zip(in_channels, out_channels)
        )

    def forward(
        self, x: Tensor, cond: Tensor, skips: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        outputs = []
        for i, block in enumerate(self.resblocks):
            if skips is not None:
                x = torch.cat([x, skips[i]], dim=1)
            x = block(x, cond)
            outputs.append(x)
        return x, outputs
