"""Cross-attention from frames to a set of context frames (iVideoGPT's conditional blocks)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.tokenizers.blocks import FrameNorm

__all__ = ["ContextCrossAttention", "sincos_2d"]


def sincos_2d(channels: int, height: int, width: int, device: torch.device) -> Tensor:
    """Fixed 2D sine-cosine position embedding ``[channels, height, width]`` (zero-padded
    when ``channels`` is not a multiple of 4)."""
    quarter = channels // 4
    out = torch.zeros(channels, height, width, device=device)
    if quarter == 0:
        return out
    freq = torch.exp(-math.log(100.0) * torch.arange(quarter, device=device) / quarter)
    ys = torch.arange(height, device=device)[:, None] * freq  # [H, Q]
    xs = torch.arange(width, device=device)[:, None] * freq  # [W, Q]
    out[:quarter] = ys.sin().T[:, :, None]
    out[quarter : 2 * quarter] = ys.cos().T[:, :, None]
    out[2 * quarter : 3 * quarter] = xs.sin().T[:, None, :]
    out[3 * quarter : 4 * quarter] = xs.cos().T[:, None, :]
    return out


class ContextCrossAttention(nn.Module):
    """Every position of every query frame attends to every position of every context frame.

    ``x`` ``[B, C, Tq, H, W]`` (future frames), ``context`` ``[B, C, T0, H, W]`` (context
    frames' features at the same resolution) → ``x + attention`` ``[B, C, Tq, H, W]``. Query
    frames do not see each other, so each future frame depends only on itself and the
    context. Both sides get a fixed 2D position embedding (the context is a set of frames:
    no time embedding, so any number of context frames works).

    Args:
        channels: feature channels ``C``.
        heads: attention heads (must divide ``channels``).
    """

    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads ({heads}) must divide channels ({channels})")
        self.heads = heads
        self.norm_q = FrameNorm(channels)
        self.norm_kv = FrameNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        if context.shape[0] != b or context.shape[1] != c or context.shape[3:] != x.shape[3:]:
            raise ValueError(
                f"context must be [{b}, {c}, T0, {h}, {w}]; got {tuple(context.shape)}"
            )
        pos = sincos_2d(c, h, w, x.device).to(x.dtype)[:, None]  # [C, 1, H, W]
        q = self.q(rearrange(self.norm_q(x) + pos, "b c t h w -> b (t h w) c"))
        kv = self.kv(rearrange(self.norm_kv(context) + pos, "b c t h w -> b (t h w) c"))
        k, v = kv.chunk(2, dim=-1)  # [B, T0·H·W, C] each
        q, k, v = (rearrange(z, "b n (g d) -> b g n d", g=self.heads) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v)  # [B, G, Tq·H·W, D]
        y = self.out(rearrange(y, "b g n d -> b n (g d)"))
        return x + rearrange(y, "b (t h w) c -> b c t h w", t=t, h=h, w=w)
