"""`LlamaLM`: a decoder-only Llama language model (Touvron et al. 2023) whose parameter names
are those of Hugging Face's ``LlamaForCausalLM`` (``model.embed_tokens``,
``model.layers.<i>.self_attn.{q,k,v,o}_proj``, ``model.layers.<i>.mlp.{gate,up,down}_proj``,
``model.layers.<i>.{input,post_attention}_layernorm``, ``model.norm``, ``lm_head``), so the
transformers that iVideoGPT (Wu et al. 2024) releases load into it with ``strict=True``.

The computation is Llama's: pre-norm blocks with RMSNorm, rotary position embeddings in the
rotate-half form, grouped-query attention through ``scaled_dot_product_attention`` and a
SwiGLU MLP. Decoding reuses wmkit's :class:`~wmkit.ar_world.kv_cache.KVCache` and rotary
tables (``wmkit.ar_world.transformer``). Differences from the Hugging Face module: no
attention dropout (it only acts in training there, and wmkit fine-tunes without it), no
``pretraining_tp`` slicing, no rope scaling, and no padding masks (every row of a batch has
the same length, as in iVideoGPT's fixed token layout).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.transformer import RMSNorm, apply_rope, rope_tables

__all__ = ["LLAMA_SIZES", "LlamaConfig", "LlamaLM"]


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a :class:`LlamaLM` (the fields of a Hugging Face ``LlamaConfig`` that
    change the computation).

    Args:
        vocab_size: number of token ids (embedding rows and logits).
        hidden_size: model width.
        intermediate_size: SwiGLU hidden width.
        num_hidden_layers: number of decoder layers.
        num_attention_heads: query heads (``hidden_size`` divisible by it).
        num_key_value_heads: key/value heads (grouped-query attention; divides the query heads).
        rms_norm_eps: RMSNorm epsilon.
        rope_theta: rotary frequency base.
        max_position_embeddings: longest sequence (positions ``0 … max - 1``).
    """

    vocab_size: int = 16386
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_key_value_heads: int = 12
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 1024

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LlamaConfig.{name} must be >= 1; got {getattr(self, name)}")
        heads, kv = self.num_attention_heads, self.num_key_value_heads
        if heads < 1 or self.hidden_size % heads or (self.hidden_size // heads) % 2:
            raise ValueError(
                f"LlamaConfig.hidden_size ({self.hidden_size}) must split into "
                f"num_attention_heads ({heads}) heads of even width"
            )
        if kv < 1 or heads % kv:
            raise ValueError(
                f"LlamaConfig.num_key_value_heads ({kv}) must divide num_attention_heads ({heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, config: dict) -> LlamaConfig:
        """The fields of a Hugging Face ``config.json`` of a Llama model; raises ``ValueError``
        for settings this module does not compute (rope scaling, biases, tied head,
        ``pretraining_tp`` > 1, an activation other than SiLU) and for a config without the
        model's shape."""
        tp, act = config.get("pretraining_tp", 1), config.get("hidden_act", "silu")
        unsupported = {
            "rope_scaling": config.get("rope_scaling"),
            "attention_bias": config.get("attention_bias", False) or None,
            "tie_word_embeddings": config.get("tie_word_embeddings", False) or None,
            "pretraining_tp": None if tp == 1 else tp,
            "hidden_act": None if act == "silu" else act,
        }
        bad = {k: v for k, v in unsupported.items() if v is not None}
        if bad:
            raise ValueError(f"Llama config settings LlamaLM does not compute: {bad}")
        required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
        missing = [k for k in (*required, "num_attention_heads") if k not in config]
        if missing:
            raise ValueError(f"Llama config lacks {missing} (Hugging Face's defaults differ)")
        fields = {k: config[k] for k in asdict(cls()) if k in config}
        if "num_key_value_heads" not in fields and "num_attention_heads" in fields:
            fields["num_key_value_heads"] = fields["num_attention_heads"]
        return cls(**fields)


#: iVideoGPT's released transformer sizes (``configs/llama``: the 138M model; ``medium``:
#: 436M) with the released vocabulary (8192 context + 8192 dynamics codes + scf + sdf).
LLAMA_SIZES: dict[str, LlamaConfig] = {
    "ivideogpt-138m": LlamaConfig(),
    "ivideogpt-436m": LlamaConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
    ),
}


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        d, dh = config.hidden_size, config.head_dim
        self.heads, self.kv_heads, self.head_dim = (
            config.num_attention_heads,
            config.num_key_value_heads,
            dh,
        )
        self.q_proj = nn.Linear(d, self.heads * dh, bias=False)
        self.k_proj = nn.Linear(d, self.kv_heads * dh, bias=False)
        self.v_proj = nn.Linear(d, self.kv_heads * dh, bias=False)
        self.o_proj = nn.Linear(self.heads * dh, d, bias=False)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        cache: KVCache | None,
        layer: int,
        positions: Tensor,
        mask: Tensor | None,
    ) -> Tensor:
        q = rearrange(self.q_proj(x), "b s (h d) -> b h s d", h=self.heads)
        k = rearrange(self.k_proj(x), "b s (h d) -> b h s d", h=self.kv_heads)
        v = rearrange(self.v_proj(x), "b s (h d) -> b h s d", h=self.kv_heads)
        q, k = apply_rope(q, positions, None, rope), apply_rope(k, positions, None, rope)
        gqa = self.kv_heads != self.heads
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            k_all, v_all = cache.write(layer, positions, k, v)  # [B, Hkv, end, Dh]
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(rearrange(y, "b h s d -> b s (h d)"))  # [B, S, D]


class LlamaMLP(nn.Module):
    """SwiGLU (Shazeer 2020) with Llama's three separate matrices."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        d, hidden = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(config)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LlamaModel(nn.Module):
    """Embedding, decoder layers and the final norm (Hugging Face's ``LlamaModel``)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        dh = config.head_dim
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dh, 2).float() / dh))
        self.register_buffer("inv_freq", inv_freq, persistent=False)


class LlamaLM(nn.Module):
    """Llama with a language-model head: ids or input embeddings → logits.

    Args:
        config: the model's shape (:class:`LlamaConfig`; ``LLAMA_SIZES`` names the released
            iVideoGPT sizes).
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def embed(self, ids: Tensor) -> Tensor:
        """Input embeddings ``[B, S, D]`` of ids ``long [B, S]``."""
        return self.model.embed_tokens(ids)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``batch`` rows and ``max_len`` positions (default: the
        model's ``max_position_embeddings``), on the model's device and dtype."""
        c = self.config
        w = self.lm_head.weight
        return KVCache.empty(
            c.num_hidden_layers, batch, c.num_key_value_heads, c.head_dim,
            max_len or c.max_position_embeddings, w.device, w.dtype,
        )  # fmt: skip

    def forward(
        self,
        ids: Tensor | None = None,
        embeds: Tensor | None = None,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits ``[B, S, V]`` of ``ids`` ``long [B, S]`` (or input ``embeds`` ``[B, S, D]``).

        Without a ``cache`` attention is causal over the inputs, at positions
        ``0 … S - 1`` unless ``positions`` ``[S]`` (increasing) are given. With a ``cache``
        the inputs' keys and values are written at ``positions`` (default: right after the
        cache's last written slot) and every query attends to all written slots at or before
        its own position, so feeding a sequence in pieces gives the logits of one full pass.
        """
        if (ids is None) == (embeds is None):
            raise ValueError("pass exactly one of ids [B, S] and embeds [B, S, D]")
        if ids is not None:
            if ids.ndim != 2 or ids.is_floating_point():
                raise ValueError(f"ids must be long [B, S]; got {ids.dtype} {tuple(ids.shape)}")
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
                raise ValueError(
                    f"ids must be in [0, {self.config.vocab_size}); got "
                    f"[{int(ids.min())}, {int(ids.max())}]"
                )
            embeds = self.embed(ids)  # [B, S, D]
        elif embeds.ndim != 3 or embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"embeds must be [B, S, {self.config.hidden_size}]; got {tuple(embeds.shape)}"
            )
        s = embeds.shape[1]
        if positions is None:
            start = cache.end if cache is not None else 0
            positions = torch.arange(start, start + s, device=embeds.device)
        if s and int(positions.max()) >= self.config.max_position_embeddings:
            raise ValueError(
                f"position {int(positions.max())} is past max_position_embeddings "
                f"{self.config.max_position_embeddings}"
            )
        return self.lm_head(self.hidden_states(embeds, positions, cache))  # [B, S, V]

    def hidden_states(self, x: Tensor, positions: Tensor, cache: KVCache | None = None) -> Tensor:
        """The final norm's output ``[B, S, D]`` for input embeddings ``x`` at ``positions``."""
        mask = cache.begin_pass(positions, x.dtype) if cache is not None else None  # [S, end]
        rope = rope_tables(positions, self.model.inv_freq, x.dtype)
        for i, layer in enumerate(self.model.layers):
            h = layer.input_layernorm(x)
            x = x + layer.self_attn(h, rope, cache, i, positions, mask)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.norm(x)
