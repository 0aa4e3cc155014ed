r"""Causalization of pretrained diffusers video networks (Vid2World, arXiv:2505.14357, §3.1).

``causalize(unet, temporal_conv=...)`` turns a full-sequence diffusers video UNet into a
strictly causal network over time with a noise level per frame. Two are covered:

``UNetSpatioTemporalConditionModel`` (Stable Video Diffusion) → :class:`CausalSVDUNet`:

- temporal attention (``TemporalBasicTransformerBlock.attn1``) gets a causal mask;
- temporal convolutions (``TemporalResnetBlock.conv1/conv2``, kernel ``(3, 1, 1)``) become
  :class:`~wmkit.diffusion_world.causal_layers.CausalTemporalConv3d` with Vid2World's
  weight-transfer rule (``shift``, ``masked`` or ``extrapolative``);
- GroupNorms that see ``[B, C, T, H, W]`` normalise per frame (the original takes
  statistics over all frames, which leaks the future);
- the timestep becomes per frame (``[B, T]``), as Diffusion Forcing needs: the returned
  :class:`CausalSVDUNet` runs the UNet's own blocks with a per-frame time embedding, plus
  an optional per-frame conditioning vector (actions) added to it through a zero-initialised
  projection, so a pretrained network starts out unchanged;
- the frame-position embedding of its temporal transformers becomes
  :class:`~wmkit.diffusion_world.causal_layers.FramePositionTimesteps` (the same embedding;
  it keeps the positions of frames run after a cached history).

Both wrappers have a history cache (:mod:`~wmkit.diffusion_world.temporal_cache`): with a
clean history, each denoising step runs the UNet on the new frame alone.

Everything else in the SVD UNet already works frame by frame (2D convs and spatial attention
over ``(B T)``; the temporal cross-attention reads the first frame's context only).

``UNet3DConditionModel`` (ModelScope text-to-video) → :class:`~wmkit.diffusion_world.unet3d.
CausalUNet3D`: the same pattern carries over. Its ``TransformerTemporalModel`` blocks run two
temporal self-attentions (``attn1`` and, with ``double_self_attention``, ``attn2``): both
get the causal mask; its ``TemporalConvLayer``\ s (four ``(3, 1, 1)`` convs each) get the
weight transfer; their GroupNorms and the temporal transformers' input GroupNorm become per
frame; the timestep is embedded per frame. A temporal transformer whose ``attn2`` is a
cross-attention (not built by ``UNet3DConditionModel``) is refused: its keys are not frames.

``WanTransformer3DModel`` (Wan 2.1 / 2.2 text-to-video) → :class:`~wmkit.diffusion_world.wan.
CausalWanTransformer`: a video transformer attends over one joint space-time token sequence,
so its self-attention gets a block-causal mask over frames and its adaLN modulation a
timestep per frame (:mod:`~wmkit.diffusion_world.wan`).

Other video transformers (LTX, CogVideoX) are not covered: their timestep modulation is per
sample and CogVideoX attends jointly over text and video tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet3DConditionModel, UNetSpatioTemporalConditionModel, WanTransformer3DModel
from diffusers.models.attention import BasicTransformerBlock, TemporalBasicTransformerBlock
from diffusers.models.transformers.transformer_temporal import (
    TransformerSpatioTemporalModel,
    TransformerTemporalModel,
)
from einops import rearrange, repeat
from torch import Tensor, nn

from wmkit.diffusion_world.causal_layers import (
    TEMPORAL_CONV_RULES,
    CausalAttnProcessor,
    CausalTemporalConv3d,
    FrameGroupNorm,
    FramePositionTimesteps,
    TemporalConvRule,
)
from wmkit.diffusion_world.diffusers_network import (
    CausalDiffusersNetwork,
    checked_network_input,
    unet_blocks,
    unet_time_embedding,
)
from wmkit.diffusion_world.unet3d import CausalUNet3D
from wmkit.diffusion_world.wan import CausalWanTransformer

DiffusersVideoUNet = UNetSpatioTemporalConditionModel | UNet3DConditionModel
DiffusersVideoNetwork = DiffusersVideoUNet | WanTransformer3DModel
_LOADABLE: dict[str, type[DiffusersVideoNetwork]] = {
    "UNetSpatioTemporalConditionModel": UNetSpatioTemporalConditionModel,
    "UNet3DConditionModel": UNet3DConditionModel,
    "WanTransformer3DModel": WanTransformer3DModel,
}

__all__ = [
    "SVD_UNET_SIZES",
    "CausalSVDUNet",
    "DiffusersVideoNetwork",
    "DiffusersVideoUNet",
    "causalize",
    "load_diffusers_network",
    "load_diffusers_unet",
    "tiny_svd_unet_config",
]

SVD_UNET_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (64, 64),  # GroupNorm(32) needs >= 2 channels a group
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        "layers_per_block": 1,
        "cross_attention_dim": 8,
        "num_attention_heads": (2, 2),
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 24,
    },
    "small": {
        "block_out_channels": (64, 128, 256),
        "down_block_types": (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        "up_block_types": (
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        "layers_per_block": 2,
        "cross_attention_dim": 256,
        "num_attention_heads": (2, 4, 8),
        "addition_time_embed_dim": 64,
        "projection_class_embeddings_input_dim": 192,
    },
}


def tiny_svd_unet_config(channels: int = 3, **overrides: Any) -> dict[str, Any]:
    """Config of a tiny random ``UNetSpatioTemporalConditionModel`` (tests, CPU)."""
    return {
        **SVD_UNET_SIZES["tiny"],
        "in_channels": channels,
        "out_channels": channels,
        **overrides,
    }


def load_diffusers_network(
    path: str | os.PathLike, expected: str | None = None
) -> DiffusersVideoNetwork:
    """Load a diffusers video network from a local directory (``config.json`` + safetensors
    weights, as written by its ``save_pretrained``); never the hub.

    The class comes from the config's ``_class_name``: ``UNetSpatioTemporalConditionModel``,
    ``UNet3DConditionModel`` or ``WanTransformer3DModel`` (a Wan pipeline's ``transformer/``
    directory); ``expected`` (one of those names) makes any other an error.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no diffusers network directory at {directory} (a pretrained network must be a "
            "local path written by the network's save_pretrained)"
        )
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"config.json is missing from {directory}")
    weights = list(directory.glob("diffusion_pytorch_model*.safetensors"))
    if not weights:
        raise FileNotFoundError(
            f"no diffusion_pytorch_model*.safetensors in {directory} (only safetensors weights "
            "are loaded)"
        )
    name = json.loads(config_file.read_text()).get("_class_name")
    if name not in _LOADABLE:
        raise ValueError(
            f"{config_file} describes a {name!r}; load_diffusers_network loads {tuple(_LOADABLE)}"
        )
    if expected is not None and name != expected:
        raise ValueError(f"{directory} holds a {name}; expected a {expected}")
    return _LOADABLE[name].from_pretrained(directory, local_files_only=True, use_safetensors=True)


#: the name ``load_diffusers_network`` had when it loaded UNets only (kept for callers)
load_diffusers_unet = load_diffusers_network


def _replace_children(module: nn.Module, temporal_conv: TemporalConvRule) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv3d) and not isinstance(child, CausalTemporalConv3d):
            if child.kernel_size[0] > 1:
                setattr(module, name, CausalTemporalConv3d.from_conv(child, temporal_conv))
        elif isinstance(child, nn.GroupNorm) and not isinstance(child, FrameGroupNorm):
            setattr(module, name, FrameGroupNorm.from_group_norm(child))
        else:
            _replace_children(child, temporal_conv)


class CausalSVDUNet(CausalDiffusersNetwork):
    """A causalized ``UNetSpatioTemporalConditionModel`` with per-frame timesteps.

    ``forward(sample [B, T, C, H, W], timesteps [B, T], cond [B, T, cond_dim] | None)`` →
    ``[B, T, C_out, H, W]``. Output frame ``t`` depends on inputs, timesteps and conditions
    of frames ``<= t`` only. When the UNet takes more input channels than ``sample`` has
    (SVD concatenates the conditioning image's latents), the extra channels are zeros.
    ``history_kv`` / ``forward_next`` / ``append_kv``: the history cache
    (:mod:`~wmkit.diffusion_world.temporal_cache`).

    Args:
        unet: the (already causalized) diffusers UNet; use :func:`causalize` to build this.
        cond_dim: width of the per-frame conditioning; ``None`` for none.
    """

    def __init__(self, unet: UNetSpatioTemporalConditionModel, cond_dim: int | None = None):
        super().__init__()
        self.unet = unet
        emb_dim = unet.time_embedding.linear_2.out_features
        cross = unet.config.cross_attention_dim
        self._init_conditioning(emb_dim, cond_dim, cross if isinstance(cross, int) else cross[0])

    @property
    def diffusers_model(self) -> UNetSpatioTemporalConditionModel:
        return self.unet

    def forward(
        self,
        sample: Tensor,
        timesteps: Tensor,
        cond: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        added_time_ids: Tensor | None = None,
    ) -> Tensor:
        unet = self.unet
        sample = checked_network_input(sample, timesteps, cond, unet.config.in_channels, "UNet")
        b, t, _, h, w = sample.shape

        emb = unet_time_embedding(unet, sample, timesteps)  # [(B T), E]
        if added_time_ids is not None:  # SVD's fps / motion / noise-aug ids, per clip
            aug = unet.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
            emb = emb + repeat(unet.add_embedding(aug), "b e -> (b t) e", t=t)
        emb = self._add_cond(emb, cond)  # [(B T), E]
        ehs = self._frame_context(encoder_hidden_states, b, t)  # [(B T), N, D]
        x = unet.conv_in(rearrange(sample, "b t c h w -> (b t) c h w"))  # [(B T), C1, H, W]
        indicator = torch.zeros(b, t, dtype=x.dtype, device=x.device)
        x = unet_blocks(unet, x, emb, ehs, (h, w), image_only_indicator=indicator)
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)


def _causal_temporal_attention(model: nn.Module) -> None:
    """Causal mask on every attention over time: SVD's ``TemporalBasicTransformerBlock.attn1``
    and both self-attentions of UNet3D's ``TransformerTemporalModel`` blocks."""
    for module in model.modules():
        if isinstance(module, TemporalBasicTransformerBlock):
            module.attn1.set_processor(CausalAttnProcessor())
        elif isinstance(module, TransformerTemporalModel):
            for block in module.transformer_blocks:
                if not isinstance(block, BasicTransformerBlock):
                    raise TypeError(
                        f"expected BasicTransformerBlocks in TransformerTemporalModel; got "
                        f"{type(block).__name__}"
                    )
                if block.attn2 is not None and block.attn2.is_cross_attention:
                    raise ValueError(
                        "cannot causalize a TransformerTemporalModel whose attn2 is a "
                        "cross-attention (cross_attention_dim set, double_self_attention off): "
                        "its keys are context tokens, not frames, so no causal mask applies"
                    )
                block.attn1.set_processor(CausalAttnProcessor())
                if block.attn2 is not None:
                    block.attn2.set_processor(CausalAttnProcessor())


def causalize(
    model: DiffusersVideoNetwork,
    temporal_conv: TemporalConvRule = "extrapolative",
    cond_dim: int | None = None,
) -> CausalSVDUNet | CausalUNet3D | CausalWanTransformer:
    """Make a diffusers video network strictly causal over time (in place) and wrap it with
    per-frame timesteps and conditioning.

    Args:
        model: a ``UNetSpatioTemporalConditionModel``, a ``UNet3DConditionModel`` or a
            ``WanTransformer3DModel`` (random or pretrained).
        temporal_conv: weight-transfer rule for the UNets' temporal convolutions:
            ``"shift"``, ``"masked"`` or ``"extrapolative"`` (Vid2World; see
            :func:`~wmkit.diffusion_world.causal_layers.transfer_temporal_kernel`). Wan has
            no temporal convolution: its attention gets a block-causal mask
            (:mod:`~wmkit.diffusion_world.wan`).
        cond_dim: width of the per-frame conditioning vectors (e.g. action embeddings)
            added to the time embedding; default the time-embedding width.

    Returns:
        :class:`CausalSVDUNet`, :class:`~wmkit.diffusion_world.unet3d.CausalUNet3D` or
        :class:`~wmkit.diffusion_world.wan.CausalWanTransformer` around the modified
        ``model``; all take ``(sample [B, T, C, H, W], timesteps [B, T], cond [B, T,
        cond_dim] | None)``.
    """
    if temporal_conv not in TEMPORAL_CONV_RULES:
        raise ValueError(
            f"temporal_conv must be one of {TEMPORAL_CONV_RULES}; got {temporal_conv!r}"
        )
    if isinstance(model, WanTransformer3DModel):
        return CausalWanTransformer(model, cond_dim=cond_dim)
    if not isinstance(model, UNetSpatioTemporalConditionModel | UNet3DConditionModel):
        raise TypeError(
            "causalize supports diffusers' UNetSpatioTemporalConditionModel, "
            f"UNet3DConditionModel and WanTransformer3DModel; got {type(model).__name__}"
        )
    _causal_temporal_attention(model)  # checks before anything is replaced
    _replace_children(model, temporal_conv)
    for module in model.modules():  # SVD's frame positions, kept after a cached history
        if isinstance(module, TransformerSpatioTemporalModel):
            module.time_proj = FramePositionTimesteps.from_timesteps(module.time_proj)
    if isinstance(model, UNet3DConditionModel):
        return CausalUNet3D(model, cond_dim=cond_dim)
    return CausalSVDUNet(model, cond_dim=cond_dim)
