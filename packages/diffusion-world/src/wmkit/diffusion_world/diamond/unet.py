"""DIAMOND's 2D UNet (Alonso et al. 2024, arXiv:2405.12399, App. C): a residual UNet whose
blocks are all conditioned through adaptive group norm, with attention where asked and
always in the two middle blocks.

The input is zero-padded at the bottom and right to a multiple of ``2 ** (levels - 1)`` and
the output cropped back, so any frame size works (CS:GO's 30x56 runs at 32x56).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.diffusion_world.diamond.blocks import Downsample, ResBlocks, Upsample

__all__ = ["DiamondUNet"]


class DiamondUNet(nn.Module):
    """Down path of ``len(channels)`` levels (a stride-2 conv before each level but the
    first), two middle blocks with attention, and an up path that concatenates, block by
    block, the matching level's outputs (last first) and then the level's input.

    Args:
        cond_channels: width of the conditioning vector.
        depths: residual blocks per level (the up path has one more per level).
        channels: width per level.
        attn_depths: per level, whether its blocks end with self-attention.
    """

    def __init__(
        self, cond_channels: int, depths: list[int], channels: list[int], attn_depths: list[bool]
    ) -> None:
        super().__init__()
        if not len(depths) == len(channels) == len(attn_depths) or not depths:
            raise ValueError(
                "depths, channels and attn_depths need one entry per level; got "
                f"{depths}, {channels}, {attn_depths}"
            )
        self.num_down = len(channels) - 1
        d_blocks, u_blocks = [], []
        for i, n in enumerate(depths):
            c1, c2 = channels[max(0, i - 1)], channels[i]
            attn = bool(attn_depths[i])
            d_blocks.append(ResBlocks([c1] + [c2] * (n - 1), [c2] * n, cond_channels, attn))
            u_blocks.append(
                ResBlocks([2 * c2] * n + [c1 + c2], [c2] * n + [c1], cond_channels, attn)
            )
        self.d_blocks = nn.ModuleList(d_blocks)
        self.u_blocks = nn.ModuleList(reversed(u_blocks))  # deepest level first
        self.mid_blocks = ResBlocks([channels[-1]] * 2, [channels[-1]] * 2, cond_channels, True)
        self.downsamples = nn.ModuleList([nn.Identity(), *(Downsample(c) for c in channels[:-1])])
        self.upsamples = nn.ModuleList(
            [nn.Identity(), *(Upsample(c) for c in reversed(channels[:-1]))]
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2**self.num_down
        x = F.pad(x, (0, -w % m, 0, -h % m))  # [B, C, H', W'], multiples of m
        skips = []
        for block, down in zip(self.d_blocks, self.downsamples):
            x_down = down(x)
            x, outputs = block(x_down, cond)
            skips.append([x_down, *outputs])
        x, _ = self.mid_blocks(x, cond)
        for block, up, skip in zip(self.u_blocks, self.upsamples, reversed(skips)):
            x, _ = block(up(x), cond, skip[::-1])
        return x[..., :h, :w]
