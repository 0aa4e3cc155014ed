"""A causalized diffusers ``UNet3DConditionModel`` (ModelScope text-to-video) with a timestep
per frame.

Build it with :func:`~wmkit.diffusion_world.causalize.causalize`, which replaces the UNet's
temporal layers in place (Vid2World, arXiv:2505.14357, §3.1) before wrapping it here:

- ``TransformerTemporalModel`` (``transformer_in`` and every block's ``temp_attentions``):
  its ``BasicTransformerBlock`` modules run *two* self-attentions over time
  (``double_self_attention=True``; ``attn2`` gets no encoder states in ``UNet3DConditionModel``),
  so both get a causal mask; its input GroupNorm sees ``[B, C, T, H, W]`` and is made per
  frame.
- ``TemporalConvLayer`` (every block's ``temp_convs``): four ``(3, 1, 1)`` convolutions
  become causal with the chosen weight-transfer rule, its four GroupNorms per frame.
- the timestep: the diffusers UNet embeds one timestep per sample and repeats it over the
  frames; :class:`CausalUNet3D` embeds ``[B, T]`` timesteps, one per frame.

Everything else already works frame by frame (``ResnetBlock2D``, spatial
``Transformer2DModel`` whose cross-attention reads the text context, 2D up/down sampling).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet3DConditionModel
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from wmkit.diffusion_world.diffusers_network import (
    CausalDiffusersNetwork,
    checked_network_input,
    unet_blocks,
    unet_time_embedding,
)

__all__ = ["UNET3D_SIZES", "CausalUNet3D", "tiny_unet3d_config"]

# ``attention_head_dim`` is what diffusers' UNet3DConditionModel uses as the *number* of heads
# of its spatial and temporal blocks (a known naming issue; ``num_attention_heads`` must stay
# unset); ``transformer_in`` has 8 heads of ``attention_head_dim`` channels.
UNET3D_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (16, 32),
        "down_block_types": ("CrossAttnDownBlock3D", "DownBlock3D"),
        "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": 8,
        "attention_head_dim": 2,
    },
    "small": {
        "block_out_channels": (64, 128, 256),
        "down_block_types": ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "cross_attention_dim": 256,
        "attention_head_dim": 8,
    },
}


def tiny_unet3d_config(channels: int = 3, **overrides: Any) -> dict[str, Any]:
    """Config of a tiny random ``UNet3DConditionModel`` (tests, CPU)."""
    return {
        **UNET3D_SIZES["tiny"],
        "in_channels": channels,
        "out_channels": channels,
        **overrides,
    }


class CausalUNet3D(CausalDiffusersNetwork):
    """A causalized ``UNet3DConditionModel`` with per-frame timesteps.

    ``forward(sample [B, T, C, H, W], timesteps [B, T], cond [B, T, cond_dim] | None)`` →
    ``[B, T, C_out, H, W]`` (frames on axis 1, as :class:`CausalSVDUNet`; diffusers' UNet
    takes ``[B, C, T, H, W]``). Output frame ``t`` depends on inputs, timesteps and
    conditions of frames ``<= t`` only. The per-frame conditioning is added to the time
    embedding through a zero-initialised projection (a pretrained network starts out
    unchanged); the cross-attention context (text embeddings in ModelScope) defaults to one
    learned token, zero-initialised. ``history_kv`` / ``forward_next`` / ``append_kv``: the
    history cache (:mod:`~wmkit.diffusion_world.temporal_cache`; the temporal transformers of
    ``UNet3DConditionModel`` have no position embedding, so nothing else needs the offset).

    Args:
        unet: the (already causalized) diffusers UNet; use :func:`causalize` to build this.
        cond_dim: width of the per-frame conditioning; ``None``: the time-embedding width.
    """

    def __init__(self, unet: UNet3DConditionModel, cond_dim: int | None = None):
        super().__init__()
        self.unet = unet
        emb_dim = unet.time_embedding.linear_2.out_features
        self._init_conditioning(emb_dim, cond_dim, unet.config.cross_attention_dim)
        self.gradient_checkpointing = False

    @property
    def diffusers_model(self) -> UNet3DConditionModel:
        return self.unet

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each UNet block in the backward pass (diffusers' ``UNet3DConditionModel``
        has no gradient checkpointing of its own, so the wrapper does it per block)."""
        self.gradient_checkpointing = enabled

    def _run(self, block: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False, **kwargs)
        return block(*args, **kwargs)

    def forward(
        self,
        sample: Tensor,
        timesteps: Tensor,
        cond: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
    ) -> Tensor:
        unet = self.unet
        sample = checked_network_input(sample, timesteps, cond, unet.config.in_channels, "UNet")
        b, t, _, h, w = sample.shape

        emb = self._add_cond(unet_time_embedding(unet, sample, timesteps), cond)  # [(B T), E]
        ehs = self._frame_context(encoder_hidden_states, b, t)  # [(B T), N, D]

        x = unet.conv_in(rearrange(sample, "b t c h w -> (b t) c h w"))  # [(B T), C1, H, W]
        x = self._run(unet.transformer_in, x, num_frames=t, return_dict=False)[0]
        x = unet_blocks(unet, x, emb, ehs, (h, w), self._run, num_frames=t)  # [(B T), C, H, W]
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)
