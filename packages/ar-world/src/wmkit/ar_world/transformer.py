"""Decoder-only Llama-style transformer: RMSNorm, RoPE, SwiGLU, ``scaled_dot_product_attention``.

The same blocks serve training (full causal attention, optional gradient checkpointing) and
inference (a static :class:`~wmkit.ar_world.kv_cache.KVCache`, arbitrary query positions and
a validity mask, which diagonal decoding needs). No embedding or head here: the world model
owns its token layout (``wmkit.ar_world.layout``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from wmkit.ar_world.kv_cache import KVCache
from wmkit.core.components import init_config

__all__ = [
    "RMSNorm",
    "SwiGLU",
    "Transformer",
    "apply_rope",
    "ffn_hidden_size",
    "merge_gate_up",
    "rope_tables",
]


def ffn_hidden_size(dim: int, multiple_of: int = 256) -> int:
    """Llama's SwiGLU width: ``8/3·dim`` rounded up to a multiple of ``multiple_of``."""
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich 2019) through ``F.rms_norm``: one op
    instead of seven, and PyTorch upcasts half-precision inputs to float32 inside it (the same
    values as normalising in float32 and casting back; tested)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), self.eps)


def rope_tables(positions: Tensor, inv_freq: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(cos, sin)`` ``[S, Dh]`` of the rotary embedding at ``positions`` ``[S]``: computed
    once per pass and shared by every layer (they all use the same frequencies)."""
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [S, Dh/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [S, Dh]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(
    x: Tensor, positions: Tensor, inv_freq: Tensor, tables: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Rotary position embedding (Su et al. 2021, rotate-half form) on ``x`` ``[B, H, S, Dh]``
    at integer ``positions`` ``[S]`` (``tables``: precomputed ``rope_tables``)."""
    cos, sin = tables if tables is not None else rope_tables(positions, inv_freq, x.dtype)
    return _rotate(x, cos, sin)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class SwiGLU(nn.Module):
    """Gated feed-forward ``down(silu(gate(x)) * up(x))`` (Shazeer 2020).

    ``gate`` and ``up`` are one ``[2·hidden, dim]`` matrix (gate rows first), so the two
    projections are one matmul: one kernel fewer per block in a batch-1 decoding pass, whose
    time on a GPU goes by kernels, and one larger GEMM in training (vLLM merges them the same
    way; Llama's reference keeps ``w1`` and ``w3`` apart). Weights saved with separate
    ``gate``/``up`` keys are merged on load (:func:`merge_gate_up`).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.register_load_state_dict_pre_hook(_merge_gate_up_hook)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def merge_gate_up(state: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Rewrite every ``<p>gate.weight`` + ``<p>up.weight`` pair under ``prefix`` (SwiGLU's
    earlier layout, two matrices) into ``<p>gate_up.weight``, in place; returns ``state``."""
    for key in [k for k in state if k.startswith(prefix)]:
        if not (key == "gate.weight" or key.endswith(".gate.weight")):
            continue
        base = key[: -len("gate.weight")]
        if base + "up.weight" in state and base + "gate_up.weight" not in state:
            state[base + "gate_up.weight"] = torch.cat(
                [state.pop(key), state.pop(base + "up.weight")], dim=0
            )
    return state


def _merge_gate_up_hook(
    module: nn.Module, state: dict[str, Tensor], prefix: str, *args: object
) -> None:
    merge_gate_up(state, prefix)


class Attention(nn.Module):
    """Multi-head attention's parameters (fused QKV, output) and rotary frequencies; the pass
    itself is :meth:`Block.forward`."""

    def __init__(self, dim: int, heads: int, rope_base: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads; got dim={dim}, heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        inv_freq = 1.0 / (rope_base ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_hidden: int, rope_base: float) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, rope_base)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = SwiGLU(dim, ffn_hidden)

    def forward(
        self,
        x: Tensor,
        positions: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        rope: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``[B, S, D]`` → ``[B, S, D]``; with a ``cache``, keys and values are written
        at ``positions`` and attention reads the layer's cached slots under ``mask``."""
        attn = self.attn
        if rope is None:
            rope = rope_tables(positions, attn.inv_freq, x.dtype)
        qkv = attn.qkv(self.attn_norm(x))  # [B, S, 3D]
        q, k, v = rearrange(qkv, "b s (n h d) -> n b h s d", n=3, h=attn.heads)
        q, k = _rotate(q, *rope), _rotate(k, *rope)  # [B, H, S, Dh] each
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k_all, v_all = cache.write(layer, positions, k, v)  # [B, H, end, Dh]
            if mask is None:
                mask = cache.attention_mask(positions)  # [S, end]
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        x = x + attn.out(rearrange(y, "b h s d -> b s (h d)"))
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
        self.dim, self.depth, self.heads, self.head_dim = dim, depth, heads, dim // heads
        self.ffn_multiple, self.rope_base = ffn_multiple, rope_base
        self.gradient_checkpointing = gradient_checkpointing
        self._compiled: Callable | None = None

    def to_config(self) -> dict:
        """``{"class_path", "init_args"}`` this transformer is rebuilt from (``config.json``)."""
        return init_config(self)

    @property
    def compiled_decoding(self) -> bool:
        """Whether cached passes on a static cache run compiled (``compile_decoding``)."""
        return self._compiled is not None

    def compile_decoding(self) -> None:
        """``torch.compile`` whole cached passes over a *static* KV cache: every block, the
        cache writes, attention and the final norm in one graph (``fullgraph``; the gpt-fast
        recipe). Inductor fuses each layer's norms, rotary embedding with the cache write and
        SwiGLU's gate, leaving the matmuls and attention to library kernels
        (``tools/bench_decoding_kernels.py`` counts them). The kernel count is what bounds a
        batch-1 pass on a GPU, with or without CUDA graphs. The module is an input of the
        compiled function, so one compilation serves every model of the same architecture,
        and ``dynamic`` shapes serve every pass length (1, then one more graph for >= 2).
        Compiles on first use. Training passes and dynamic caches stay eager."""
        self._compiled = torch.compile(_forward, fullgraph=True, dynamic=True)

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
        if self._compiled is not None and cache is not None and cache.static:
            return self._compiled(self, x, positions, cache)
        return _forward(self, x, positions, cache)


def _forward(
    transformer: Transformer, x: Tensor, positions: Tensor, cache: KVCache | None
) -> Tensor:
    """:meth:`Transformer.forward`'s body (a function of the module, so ``torch.compile``
    treats the module as an input rather than a constant)."""
    # once per pass, not per layer: the attention mask and the rotary tables
    mask = cache.begin_pass(positions, x.dtype) if cache is not None else None  # [S, end]
    blocks = transformer.blocks
    rope = rope_tables(positions, blocks[0].attn.inv_freq, x.dtype) if len(blocks) else None
    checkpointed = transformer.gradient_checkpointing and transformer.training and cache is None
    for i, block in enumerate(blocks):
        if checkpointed:
            x = checkpoint(block, x, positions, None, 0, rope, use_reentrant=False)
        else:
            x = block(x, positions, cache, i, rope, mask)
    return transformer.norm(x)
