"""A causalized diffusers ``WanTransformer3DModel`` (Wan 2.1 / 2.2 text-to-video) with a
noise level per frame: the Diffusion Forcing form of a pretrained video transformer.

A video DiT attends over one joint space-time token sequence, so causality is a block mask
over frames rather than a layer to replace (as in the UNets):

- self-attention is **block-causal**: a token of frame ``t`` attends to every token of
  frames ``<= t`` (:class:`CausalWanAttnProcessor`, same weights, same RoPE);
- the timestep is **per frame**: each frame's tokens get their frame's time embedding and
  adaLN modulation (the per-token modulation path diffusers has for Wan 2.2 TI2V, fed one
  value per frame, as SkyReels-V2's Diffusion Forcing models do);
- a per-frame conditioning vector (actions) is added to the time embedding through a
  zero-initialised projection, so a pretrained network starts out unchanged; the text
  context defaults to one learned token, zero-initialised (the cross-attention keys are
  text tokens, not frames, so it needs no mask).

Everything else in Wan works per token: the patch embedding (temporal patch 1, checked),
the cross-attention, the feed-forward and the output head. Wan's 3D RoPE keeps each token's
frame index, so positions need no change. Image-to-video Wan models (an image
cross-attention branch) are refused.

The history cache (:mod:`~wmkit.diffusion_world.temporal_cache`) works as for the DiT: the
history's keys and values are kept per block, and the frames after it run alone at their
own RoPE positions.

Where we differ: SkyReels-V2 (arXiv:2504.13074) fine-tunes Wan into a Diffusion Forcing
model with causal blocks of several frames; here every latent frame is its own block (one
world-model step), and the conversion is Vid2World's (arXiv:2505.14357) recipe applied to a
video transformer: the weights are kept and fine-tuning adapts them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel
from einops import rearrange, repeat
from torch import Tensor, nn

from wmkit.diffusion_world.diffusers_network import CausalDiffusersNetwork, checked_network_input
from wmkit.diffusion_world.temporal_cache import active_history

__all__ = ["WAN_SIZES", "CausalWanAttnProcessor", "CausalWanTransformer", "tiny_wan_config"]

WAN_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "text_dim": 16,
        "freq_dim": 32,
        "ffn_dim": 64,
        "num_layers": 2,
        "rope_max_seq_len": 64,
    },
    # Wan2.1-T2V-1.3B's transformer (its diffusers config): pretrained weights load into it
    "1.3B": {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 12,
        "attention_head_dim": 128,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 8960,
        "num_layers": 30,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 1024,
    },
}


def tiny_wan_config(channels: int = 3, **overrides: Any) -> dict[str, Any]:
    """Config of a tiny random ``WanTransformer3DModel`` (tests, CPU)."""
    return {**WAN_SIZES["tiny"], "in_channels": channels, "out_channels": channels, **overrides}


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Wan's rotary embedding on ``x [B, S, heads, d]`` (interleaved pairs), tables ``[1, S,
    1, d]``."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class CausalWanAttnProcessor:
    """Wan's self-attention with a block-causal mask over frames.

    The mask comes from the :class:`CausalWanTransformer` call in progress (its frame layout);
    inside the history cache's calls the keys and values of the frames before the ones run
    are kept or read (:mod:`~wmkit.diffusion_world.temporal_cache`). Same projections,
    QK-norms and RoPE as diffusers' ``WanAttnProcessor``.
    """

    def __init__(self, frame_tokens: int = 0) -> None:
        self.frame_tokens = frame_tokens  # tokens per frame of the call in progress

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("CausalWanAttnProcessor serves Wan's self-attention (attn1) only")
        n = self.frame_tokens
        if n <= 0 or hidden_states.shape[1] % n:
            raise RuntimeError(
                "CausalWanAttnProcessor runs inside CausalWanTransformer.forward, which sets "
                "the frame layout"
            )
        if getattr(attn, "fused_projections", False):
            q, k, v = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))  # [B, S, h, d]
        if rotary_emb is not None:
            q, k = _rotate(q, *rotary_emb), _rotate(k, *rotary_emb)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, h, S, d]
        session = active_history()
        past = None if session is None else session.past(attn, k.shape[0])
        if past is not None:
            k = torch.cat([past[0].to(k.dtype), k], dim=2)  # [B, h, L·n + S, d]
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        if session is not None:
            session.keep(attn, k, v)
        s, total = q.shape[2], k.shape[2]
        mask = None
        if total > n:  # more than one frame: block-causal (queries are the last s tokens)
            q_frame = (torch.arange(s, device=q.device) + total - s) // n
            k_frame = torch.arange(total, device=q.device) // n
            mask = q_frame[:, None] >= k_frame[None, :]  # [S, L·n + S]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, h, S, d]
        out = out.transpose(1, 2).flatten(2, 3).type_as(q)  # [B, S, h·d]
        return attn.to_out[1](attn.to_out[0](out))


class CausalWanTransformer(CausalDiffusersNetwork):
    """A causalized ``WanTransformer3DModel`` with per-frame timesteps.

    ``forward(sample [B, T, C, H, W], timesteps [B, T], cond [B, T, cond_dim] | None)`` →
    ``[B, T, C_out, H, W]``; output frame ``t`` depends on inputs, timesteps and conditions
    of frames ``<= t`` only. Extra input channels of the transformer (Wan's image-to-video
    variants concatenate a conditioning latent) are zeros. ``history_kv`` /
    ``forward_next`` / ``append_kv``: the history cache.

    Args:
        transformer: a ``WanTransformer3DModel`` (random or pretrained), modified in place
            (its self-attention processors); use :func:`~wmkit.diffusion_world.causalize.
            causalize` to build this.
        cond_dim: width of the per-frame conditioning; ``None``: the transformer's width.
    """

    def __init__(self, transformer: WanTransformer3DModel, cond_dim: int | None = None) -> None:
        super().__init__()
        config = transformer.config
        if config.patch_size[0] != 1:
            raise ValueError(
                f"only Wan transformers with temporal patch 1 can be made causal per frame; got "
                f"patch_size {tuple(config.patch_size)}"
            )
        if transformer.condition_embedder.image_embedder is not None or config.added_kv_proj_dim:
            raise ValueError(
                "image-to-video Wan transformers (image_dim / added_kv_proj_dim) are not "
                "supported: their image cross-attention branch has no frame axis to make causal"
            )
        self.transformer = transformer
        self.processors = []
        for block in transformer.blocks:
            processor = CausalWanAttnProcessor()
            block.attn1.processor = processor
            self.processors.append(processor)
        dim = config.num_attention_heads * config.attention_head_dim
        self._init_conditioning(dim, cond_dim, config.text_dim)

    @property
    def diffusers_model(self) -> WanTransformer3DModel:
        return self.transformer

    def forward(
        self,
        sample: Tensor,
        timesteps: Tensor,
        cond: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
    ) -> Tensor:
        wan = self.transformer
        sample = checked_network_input(
            sample, timesteps, cond, wan.config.in_channels, "transformer"
        )
        b, t, _, h, w = sample.shape
        _, ph, pw = wan.config.patch_size
        if h % ph or w % pw:
            raise ValueError(f"frames of {h}x{w} do not divide into {ph}x{pw} patches")
        x = rearrange(sample, "b t c h w -> b c t h w")
        n = (h // ph) * (w // pw)  # tokens per frame

        session = active_history()
        first = 0 if session is None else session.first_frame
        # RoPE tables depend only on the shape: those of frames first..first+t-1
        cos, sin = wan.rope(torch.empty(1, 1, first + t, h, w, device="meta"))
        cos, sin = cos[:, first * n :], sin[:, first * n :]  # [1, T·n, 1, d]

        tokens = wan.patch_embedding(x).flatten(2).transpose(1, 2)  # [B, T·n, D]
        embedder = wan.condition_embedder
        t_freq = embedder.timesteps_proj(timesteps.reshape(-1))  # [(B T), F]
        t_freq = t_freq.to(next(embedder.time_embedder.parameters()).dtype)
        temb = embedder.time_embedder(t_freq).type_as(tokens)  # [(B T), D]
        if cond is not None:
            temb = temb + self.cond_proj(rearrange(cond, "b t d -> (b t) d")).type_as(temb)
        proj = embedder.time_proj(embedder.act_fn(temb))  # [(B T), 6 D]
        # per token: each frame's modulation repeated over its n tokens
        temb = repeat(temb, "(b t) d -> b (t n) d", b=b, n=n)
        proj = repeat(proj, "(b t) (six d) -> b (t n) six d", b=b, n=n, six=6)
        if encoder_hidden_states is None:
            encoder_hidden_states = self.context.expand(b, -1, -1)
        context = embedder.text_embedder(encoder_hidden_states.to(tokens.dtype))

        for processor in self.processors:
            processor.frame_tokens = n
        for block in wan.blocks:
            if torch.is_grad_enabled() and wan.gradient_checkpointing:
                tokens = wan._gradient_checkpointing_func(block, tokens, context, proj, (cos, sin))
            else:
                tokens = block(tokens, context, proj, (cos, sin))

        shift, scale = (wan.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
        out = wan.norm_out(tokens.float()) * (1 + scale.squeeze(2)) + shift.squeeze(2)
        out = wan.proj_out(out.type_as(tokens))  # [B, T·n, C_out·ph·pw]
        return rearrange(
            out, "b (t hh ww) (ph pw c) -> b t c (hh ph) (ww pw)",
            t=t, hh=h // ph, ww=w // pw, ph=ph, pw=pw,
        )  # fmt: skip
