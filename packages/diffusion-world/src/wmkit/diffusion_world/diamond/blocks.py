"""Building blocks of DIAMOND's networks (Alonso et al., 2024, appendix C; ``eloialonso/diamond``).

DIAMOND's denoiser UNet and its reward/termination encoder share one residual block: a
GroupNorm without affine parameters whose scale and shift are read from a conditioning
vector (adaptive group norm, as in EDM/ADM's noise conditioning), optionally followed by
self-attention. The module and parameter names follow the released checkpoints
(``norm1.linear``, ``attn.qkv_proj``, ``downsamples.k.conv``, ...), so a released state
dict loads strictly without renaming.

Two behaviours are kept because the released weights were trained with them:

- the attention block's residual adds the *normalised* input, ``norm(x) + out(attn(norm(x)))``,
  not ``x``;
- group norms use ``max(1, C // 32)`` groups and eps ``1e-5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "GN_GROUP_SIZE",
    "AdaGroupNorm",
    "Downsample",
    "GroupNorm",
    "ResBlock",
    "ResBlocks",
    "SelfAttention2d",
]

GN_GROUP_SIZE = 32
GN_EPS = 1e-5
ATTN_HEAD_DIM = 8


def _num_groups(channels: int) -> int:
    return max(1, channels // GN_GROUP_SIZE)


class GroupNorm(nn.Module):
    """Affine GroupNorm with DIAMOND's group count; the inner module is ``norm`` (key names)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_num_groups(channels), channels, eps=GN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class AdaGroupNorm(nn.Module):
    """GroupNorm without affine parameters, then ``x * (1 + scale) + shift`` with
    ``[scale | shift] = linear(cond)`` (scale first).

    Args:
        channels: channels of ``x``.
        cond_channels: width of the conditioning vector.
    """

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.linear = nn.Linear(cond_channels, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.group_norm(x, _num_groups(self.channels), eps=GN_EPS)  # [N, C, H, W]
        scale, shift = rearrange(self.linear(cond), "n c -> n c 1 1").chunk(2, dim=1)
        return x * (1 + scale) + shift


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map.

    ``qkv_proj``'s output channels are laid out ``[q heads | k heads | v heads]``, each head
    ``C // heads`` contiguous channels, with ``heads = max(1, C // 8)``. The residual adds the
    normalised input (see the module docstring).

    Args:
        channels: channels of the feature map.
        head_dim: target channels per head.
    """

    def __init__(self, channels: int, head_dim: int = ATTN_HEAD_DIM) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            raise ValueError(
                f"attention channels must split into {self.heads} heads; got {channels}"
            )
        self.norm = GroupNorm(channels)
        self.qkv_proj = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.out_proj = nn.Conv2d(channels, channels, kernel_size=1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.norm(x)  # [N, C, H, W]
        q, k, v = rearrange(
            self.qkv_proj(x), "n (three m d) h w -> three n m (h w) d", three=3, m=self.heads
        )  # each [N, heads, HW, d]
        y = F.scaled_dot_product_attention(q, k, v)  # [N, heads, HW, d]
        y = rearrange(y, "n m (h w) d -> n (m d) h w", h=h, w=w)
        return x + self.out_proj(y)


class ResBlock(nn.Module):
    """``x + conv2(silu(norm2(conv1(silu(norm1(x, cond))), cond)))``, then optional attention;
    a 1x1 ``proj`` maps the residual when the channel count changes.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        cond_channels: width of the conditioning vector.
        attn: follow the block with :class:`SelfAttention2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, attn: bool) -> None:
        super().__init__()
        self.proj = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.norm1 = AdaGroupNorm(in_channels, cond_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = AdaGroupNorm(out_channels, cond_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.attn = SelfAttention2d(out_channels) if attn else nn.Identity()
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        r = self.proj(x)  # [N, out, H, W]
        x = self.conv1(F.silu(self.norm1(x, cond)))
        x = self.conv2(F.silu(self.norm2(x, cond)))
        return self.attn(x + r)


class ResBlocks(nn.Module):
    """A chain of :class:`ResBlock` sharing one conditioning vector.

    ``forward(x, cond, to_cat)`` returns the last output and every block's output (the
    UNet's skips); with ``to_cat``, block ``i`` first concatenates ``to_cat[i]`` to its input
    on channels.

    Args:
        in_channels: input channels of each block.
        out_channels: output channels of each block.
        cond_channels: width of the conditioning vector.
        attn: give every block self-attention.
    """

    def __init__(
        self, in_channels: list[int], out_channels: list[int], cond_channels: int, attn: bool
    ) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError(
                f"in_channels and out_channels must have one entry per block; got "
                f"{len(in_channels)} and {len(out_channels)}"
            )
        self.resblocks = nn.ModuleList(
            ResBlock(i, o, cond_channels, attn) for i, o in zip(in_channels, out_channels)
        )

    def forward(
        self, x: Tensor, cond: Tensor, to_cat: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        outputs = []
        for i, block in enumerate(self.resblocks):
            if to_cat is not None:
                x = torch.cat((x, to_cat[i]), dim=1)
            x = block(x, cond)
            outputs.append(x)
        return x, outputs


class Downsample(nn.Module):
    """A 3x3 stride-2 convolution (orthogonal init) halving height and width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        nn.init.orthogonal_(self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
