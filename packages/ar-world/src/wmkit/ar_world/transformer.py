"""Decoder-only Llama-style transformer: RMSNorm, RoPE, SwiGLU, ``scaled_dot_product_attention``.

The same blocks serve training (full causal attention, optional gradient checkpointing) and
inference (a static :class:`~wmkit.ar_world.kv_cache.KVCache`, arbitrary query positions and
a validity mask, which diagonal decoding needs). No embedding or head here: the world model
owns its token layout (``wmkit.ar_world.layout``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from wmkit.ar_world.kv_cache import KVCache

__all__ = ["RMSNorm", "SwiGLU", "Transformer", "apply_rope", "ffn_hidden_size"]


def ffn_hidden_size(dim: int, multiple_of: int = 256) -> int:
    """Llama's SwiGLU width: ``8/3·dim`` rounded up to a multiple of ``multiple_of``."""
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich 2019), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def apply_rope(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """Rotary position embedding (Su et al. 2021, rotate-half form) on ``x`` ``[B, H, S, Dh]``
    at integer ``positions`` ``[S]``."""
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [S, Dh/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [S, Dh]
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


class SwiGLU(nn.Module):
    """Gated feed-forward ``down(silu(gate(x)) * up(x))`` (Shazeer 2020)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, rope_base: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads; got dim={dim}, heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        inv_freq = 1.0 / (rope_base ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(
        self, x: Tensor, positions: Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b s (n h d) -> n b h s d", n=3, h=self.heads)
        q = apply_rope(q, positions, self.inv_freq)  # [B, H, S, Dh]
        k = apply_rope(k, positions, self.inv_freq)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k_all, v_all = cache.write(layer, positions, k, v)  # [B, H, end, Dh]
            mask = cache.attention_mask(positions)  # [S, end]
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        return self.out(rearrange(y, "b h s d -> b s (h d)"))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_hidden: int, rope_base: float) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, rope_base)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = SwiGLU(dim, ffn_hidden)

    def forward(
        self, x: Tensor, positions: Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), positions, cache, layer)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """A stack of pre-norm Llama blocks and a final RMSNorm over embeddings ``[B, S, D]``.

    Args:
        dim: model width.
        depth: number of blocks.
        heads: attention heads (``dim`` divisible by it).
        ffn_multiple: SwiGLU width is ``8/3·dim`` rounded up to this.
        rope_base: RoPE frequency base.
        gradient_checkpointing: recompute blocks in the backward pass (training only).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        ffn_multiple: int = 256,
        rope_base: float = 10000.0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        hidden = ffn_hidden_size(dim, ffn_multiple)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, rope_base) for _ in range(depth))
        self.norm = RMSNorm(dim)
        self.heads, self.head_dim = heads, dim // heads
        self.gradient_checkpointing = gradient_checkpointing

    def new_cache(
        self,
        batch: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
        static: bool = False,
    ) -> KVCache:
        return KVCache.empty(
            len(self.blocks), batch, self.heads, self.head_dim, max_len, device, dtype, static
        )

    def forward(self, x: Tensor, positions: Tensor, cache: KVCache | None = None) -> Tensor:
        """``x`` ``[B, S, D]`` at ``positions`` ``[S]`` → hidden states ``[B, S, D]``.

        Without a cache, attention is causal over ``x`` itself (``positions`` must then be
        increasing, e.g. ``arange(S)``). With a cache, ``x`` is written at ``positions`` and
        each query attends to every written slot at or before its own position.
        """
        if cache is not None:
            cache.mark(positions)
        for i, block in enumerate(self.blocks):
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(block, x, positions, use_reentrant=False)
            else:
                x = block(x, positions, cache, i)
        return self.norm(x)
