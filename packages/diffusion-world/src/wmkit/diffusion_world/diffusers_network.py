"""What the causalized diffusers networks (:class:`~wmkit.diffusion_world.causalize.
CausalSVDUNet`, :class:`~wmkit.diffusion_world.unet3d.CausalUNet3D`,
:class:`~wmkit.diffusion_world.wan.CausalWanTransformer`) share: the per-frame conditioning
added to the time embedding, the default text context, the input checks, gradient
checkpointing and the history cache; and the down / mid / up pass of the two UNets
(``unet_blocks``), which differ only in how a block learns the number of frames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from wmkit.diffusion_world.temporal_cache import TemporalHistoryCache

__all__ = [
    "CausalDiffusersNetwork",
    "checked_network_input",
    "unet_blocks",
    "unet_time_embedding",
]


def checked_network_input(
    sample: Tensor, timesteps: Tensor, cond: Tensor | None, in_channels: int, network: str
) -> Tensor:
    """Check ``sample [B, T, C, H, W]``, ``timesteps [B, T]`` and ``cond [B, T, D] | None``
    and return ``sample`` with zero channels appended up to ``in_channels`` (a network that
    takes more, e.g. SVD's conditioning-image latents)."""
    if sample.ndim != 5:
        raise ValueError(f"sample must be [B, T, C, H, W]; got {tuple(sample.shape)}")
    b, t, c, h, w = sample.shape
    if timesteps.shape != (b, t):
        raise ValueError(f"timesteps must be [B, T] = {(b, t)}; got {tuple(timesteps.shape)}")
    if cond is not None and cond.shape[:2] != (b, t):
        raise ValueError(f"cond must be [B, T, D] with B, T = {(b, t)}; got {tuple(cond.shape)}")
    extra = in_channels - c
    if extra < 0:
        raise ValueError(f"sample has {c} channels; the {network} takes {in_channels}")
    if extra:
        sample = torch.cat([sample, sample.new_zeros(b, t, extra, h, w)], dim=2)
    return sample


class CausalDiffusersNetwork(TemporalHistoryCache, nn.Module):
    """Base of the causalized diffusers networks: ``forward(sample [B, T, C, H, W],
    timesteps [B, T], cond [B, T, cond_dim] | None)`` → ``[B, T, C_out, H, W]``."""

    cond_dim: int

    @property
    def diffusers_model(self) -> nn.Module:
        """The wrapped diffusers network (its config is what ``save_pretrained`` records)."""
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        """Channels of the frames it predicts (the world model's ``channels``)."""
        return int(self.diffusers_model.config.out_channels)

    def _init_conditioning(self, emb_dim: int, cond_dim: int | None, context_dim: int) -> None:
        """``cond_proj``: per-frame conditioning (``cond_dim``, default ``emb_dim``) → the
        time embedding, zero-initialised so a pretrained network starts out unchanged;
        ``context``: the default cross-attention context, one zero token of ``context_dim``."""
        self.cond_dim = cond_dim if cond_dim is not None else emb_dim
        self.cond_proj = nn.Linear(self.cond_dim, emb_dim)
        nn.init.zeros_(self.cond_proj.weight)
        nn.init.zeros_(self.cond_proj.bias)
        self.context = nn.Parameter(torch.zeros(1, 1, context_dim))

    def _add_cond(self, emb: Tensor, cond: Tensor | None) -> Tensor:
        """The time embedding ``emb [(B T), E]`` plus the projected per-frame ``cond``."""
        if cond is not None:
            emb = emb + self.cond_proj(rearrange(cond, "b t d -> (b t) d"))  # [(B T), E]
        return emb

    def _frame_context(self, encoder_hidden_states: Tensor | None, b: int, t: int) -> Tensor:
        """The cross-attention context ``[B, N, D]`` (default: ``context``) repeated per
        frame: ``[(B T), N, D]``."""
        if encoder_hidden_states is None:
            encoder_hidden_states = self.context.expand(b, -1, -1)
        return repeat(encoder_hidden_states, "b n d -> (b t) n d", t=t)  # [(B T), N, D]

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Diffusers' own gradient checkpointing of the wrapped network."""
        if enabled:
            self.diffusers_model.enable_gradient_checkpointing()
        else:
            self.diffusers_model.disable_gradient_checkpointing()


def unet_time_embedding(unet: nn.Module, sample: Tensor, timesteps: Tensor) -> Tensor:
    """A diffusers UNet's time embedding of ``timesteps [B, T]``, one per frame (the change
    from diffusers, which repeats one timestep per sample): ``[(B T), E]``."""
    t_emb = unet.time_proj(timesteps.reshape(-1)).to(sample.dtype)  # [(B T), C0]
    return unet.time_embedding(t_emb)  # [(B T), E]


def _cross(block: nn.Module) -> bool:
    return bool(getattr(block, "has_cross_attention", False))


def _call(block: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return block(*args, **kwargs)


def unet_blocks(
    unet: nn.Module,
    x: Tensor,
    emb: Tensor,
    ehs: Tensor,
    size: tuple[int, int],
    call: Callable[..., Any] = _call,
    **frame_kwargs: Any,
) -> Tensor:
    """The pass of a diffusers UNet (``UNetSpatioTemporalConditionModel``,
    ``UNet3DConditionModel``) after ``conv_in``: down blocks, mid block, up blocks fed their
    skips, then the output head, on per-frame features ``x [(B T), C1, H, W]`` with the time
    embedding ``emb [(B T), E]`` and context ``ehs [(B T), N, D]``; ``size`` is the frames'
    ``(H, W)``. ``call(block, *args, **kwargs)`` runs each block (e.g. with gradient
    checkpointing), and ``frame_kwargs`` tell every block the frame layout (SVD's
    ``image_only_indicator``, UNet3D's ``num_frames``). Returns ``[(B T), C_out, H, W]``."""
    forward_upsample_size = any(s % 2**unet.num_upsamplers for s in size)
    upsample_size = None
    res = (x,)
    for block in unet.down_blocks:
        kwargs = {"encoder_hidden_states": ehs} if _cross(block) else {}
        x, block_res = call(block, hidden_states=x, temb=emb, **frame_kwargs, **kwargs)
        res += block_res
    x = call(unet.mid_block, hidden_states=x, temb=emb, encoder_hidden_states=ehs, **frame_kwargs)
    for i, block in enumerate(unet.up_blocks):
        skips = res[-len(block.resnets) :]
        res = res[: -len(block.resnets)]
        if i < len(unet.up_blocks) - 1 and forward_upsample_size:
            upsample_size = res[-1].shape[2:]
        kwargs = {"encoder_hidden_states": ehs} if _cross(block) else {}
        x = call(
            block,
            hidden_states=x,
            temb=emb,
            res_hidden_states_tuple=skips,
            upsample_size=upsample_size,
            **frame_kwargs,
            **kwargs,
        )
    if unet.conv_norm_out is not None:
        x = unet.conv_act(unet.conv_norm_out(x))
    return unet.conv_out(x)  # [(B T), C_out, H, W]
