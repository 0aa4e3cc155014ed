"""What the causalized diffusers networks (:class:`~wmkit.diffusion_world.causalize.
CausalSVDUNet`, :class:`~wmkit.diffusion_world.unet3d.CausalUNet3D`,
:class:`~wmkit.diffusion_world.wan.CausalWanTransformer`) share: the per-frame conditioning
added to the time embedding, the default text context, the input checks, gradient
checkpointing and the history cache."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmkit.diffusion_world.temporal_cache import TemporalHistoryCache

__all__ = ["CausalDiffusersNetwork", "checked_network_input"]


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

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Diffusers' own gradient checkpointing of the wrapped network."""
        if enabled:
            self.diffusers_model.enable_gradient_checkpointing()
        else:
            self.diffusers_model.disable_gradient_checkpointing()
