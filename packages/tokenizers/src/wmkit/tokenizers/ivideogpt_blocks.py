"""2D autoencoder blocks with the parameter layout of diffusers' VAE (``Encoder`` /
``Decoder`` of ``diffusers.models.autoencoders.vae``), which iVideoGPT's tokenizer builds on.

The blocks work on single frames ``[N, C, H, W]`` and carry diffusers' module names
(``resnets.0.norm1``, ``downsamplers.0.conv``, ``attentions.0.to_q``, ...), so a released
iVideoGPT state dict loads into them with ``strict=True``. The arithmetic is that of
diffusers 0.27 at float32 with no time embedding: pre-norm resnets (GroupNorm eps 1e-6,
SiLU, 3×3 convolutions, a 1×1 ``conv_shortcut`` when the width changes), downsampling by a
(0, 1, 0, 1) zero pad and a stride-2 3×3 convolution, upsampling by nearest ×2 and a 3×3
convolution, and a bottleneck of two resnets around an optional single-head self-attention.

wmkit's own per-frame blocks (:mod:`wmkit.tokenizers.blocks`) compute the same resnet but on
``[B, C, T, H, W]`` with other names (``skip``, ``FrameConv2d.conv``), so they cannot hold
the released keys; these are their diffusers-named counterparts.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "DownEncoderBlock",
    "MidBlock",
    "MidBlockAttention",
    "ResnetBlock",
    "UpDecoderBlock",
]

#: GroupNorm epsilon of every resnet, bottleneck attention and output norm (diffusers' VAE).
NORM_EPS = 1e-6


class ResnetBlock(nn.Module):
    """``shortcut(x) + conv2(SiLU(GN(conv1(SiLU(GN(x))))))`` (diffusers ``ResnetBlock2D``
    without a time embedding).

    Args:
        in_channels: input channels.
        out_channels: output channels (a 1×1 ``conv_shortcut`` when they differ).
        groups: GroupNorm groups of both norms.
        dropout: dropout before ``conv2`` (0 in iVideoGPT).
    """

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class _Downsample(nn.Module):
    """2× downsampling: zero pad (0, 1, 0, 1), then a stride-2 3×3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # [N, C, H/2, W/2]


class _Upsample(nn.Module):
    """2× upsampling: nearest neighbour, then a 3×3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # [N, C, 2H, 2W]


class DownEncoderBlock(nn.Module):
    """``layers`` resnets, then (unless it is the last level) a 2× downsampling
    (diffusers ``DownEncoderBlock2D``)."""

    def __init__(
        self, in_channels: int, out_channels: int, layers: int, groups: int, downsample: bool
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, groups)
            for i in range(layers)
        )
        self.downsamplers = nn.ModuleList([_Downsample(out_channels)]) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class UpDecoderBlock(nn.Module):
    """``layers`` resnets, then (unless it is the last level) a 2× upsampling
    (diffusers ``UpDecoderBlock2D``; the VAE decoder passes ``layers_per_block + 1``)."""

    def __init__(
        self, in_channels: int, out_channels: int, layers: int, groups: int, upsample: bool
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, groups)
            for i in range(layers)
        )
        self.upsamplers = nn.ModuleList([_Upsample(out_channels)]) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlockAttention(nn.Module):
    """Single-head self-attention over the positions of a frame with a residual connection
    (diffusers ``Attention`` as the VAE bottleneck builds it: GroupNorm, ``to_q/to_k/to_v``,
    ``to_out.0``, scale ``1/sqrt(C)``)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=NORM_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        y = rearrange(self.group_norm(x), "n c h w -> n 1 (h w) c")
        y = F.scaled_dot_product_attention(self.to_q(y), self.to_k(y), self.to_v(y))
        y = self.to_out[1](self.to_out[0](y))  # [N, 1, H·W, C]
        return rearrange(y, "n 1 (h w) c -> n c h w", h=h, w=w) + x


class MidBlock(nn.Module):
    """Bottleneck: resnet, (optional) self-attention, resnet (diffusers ``UNetMidBlock2D``
    with one layer)."""

    def __init__(self, channels: int, groups: int, attention: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(channels, channels, groups) for _ in range(2))
        self.attentions = (
            nn.ModuleList([MidBlockAttention(channels, groups)]) if attention else None
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)
