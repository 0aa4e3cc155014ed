"""Cross-attention from a future frame's features to the context frames' features, as
iVideoGPT's conditional encoder and decoder use it (Wu et al. 2024, §3.1; thuml/iVideoGPT's
``CrossAttentionBlock``).

The context frames' feature maps are stacked along the height (frame-major) and normalised
together (one GroupNorm over the stacked map, so its statistics span all context frames);
queries and keys get learned absolute position embeddings (``q_pos_emb`` ``[H·W, C]``,
``kv_pos_emb`` ``[T0·H·W, C]``), so the block is tied to one resolution and one number of
context frames. Output: ``SiLU(z + MHA(GN(z) + q_pos, GN(ctx) + kv_pos))``.

wmkit's :class:`~wmkit.tokenizers.cross_attention.ContextCrossAttention` (the compressive
tokenizer's) differs on purpose: per-frame norms, a fixed sine-cosine position embedding and
no output activation, so it works for any number of context frames. This one reproduces the
released checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["StackedContextAttention"]


class StackedContextAttention(nn.Module):
    """``z`` ``[B·F, C, H, W]`` (``F`` future frames per video) attends to ``context``
    ``[B, T0, C, H, W]`` (that video's context features) → ``[B·F, C, H, W]``.

    Args:
        channels: feature channels ``C`` (divisible by ``heads`` and ``groups``).
        resolution: feature height and width ``H = W``.
        context_frames: ``T0``.
        heads: attention heads (iVideoGPT: 4).
        groups: GroupNorm groups of both norms (iVideoGPT: 32; eps 1e-5).
        dropout: attention and residual dropout in training (iVideoGPT: 0.1).
    """

    def __init__(
        self,
        channels: int,
        resolution: int,
        context_frames: int,
        heads: int = 4,
        groups: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if channels % heads or channels % groups:
            raise ValueError(
                f"cross-attention channels ({channels}) must be divisible by its heads "
                f"({heads}) and GroupNorm groups ({groups})"
            )
        self.context_frames = context_frames
        self.att = nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True)
        self.resid_dropout = nn.Dropout(dropout)
        self.kv_norm = nn.GroupNorm(groups, channels)
        self.q_norm = nn.GroupNorm(groups, channels)
        tokens = resolution * resolution
        self.kv_pos_emb = nn.Parameter(torch.zeros(context_frames * tokens, channels))
        self.q_pos_emb = nn.Parameter(torch.zeros(tokens, channels))

    def forward(self, z: Tensor, context: Tensor) -> Tensor:
        n, c, h, w = z.shape
        b, t0 = context.shape[:2]
        if (
            context.ndim != 5
            or t0 != self.context_frames
            or context.shape[2:] != (c, h, w)
            or n % b
            or h * w != self.q_pos_emb.shape[0]
        ):
            raise ValueError(
                f"cross-attention at {self.q_pos_emb.shape[0]} positions and "
                f"{self.context_frames} context frames got queries {tuple(z.shape)} and "
                f"context {tuple(context.shape)}; expected [B·F, C, H, W] and [B, "
                f"{self.context_frames}, C, H, W] with H·W = {self.q_pos_emb.shape[0]}"
            )
        stacked = rearrange(context, "b t c h w -> b c (t h) w")
        kv = rearrange(self.kv_norm(stacked), "b c th w -> b (th w) c") + self.kv_pos_emb
        kv = kv.repeat_interleave(n // b, dim=0)  # [B·F, T0·H·W, C]
        q = rearrange(self.q_norm(z), "n c h w -> n (h w) c") + self.q_pos_emb
        y, _ = self.att(q, kv, kv, need_weights=False)  # [B·F, H·W, C]
        y = rearrange(self.resid_dropout(y), "n (h w) c -> n c h w", h=h, w=w)
        return F.silu(z + y)
