"""``DiffusionState``: what a :class:`~wmkit.diffusion_world.DiffusionWorldModel` carries from one
``step`` (or latent step) to the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from wmkit.core import WorldState

__all__ = ["DiffusionState"]


@dataclass
class DiffusionState(WorldState):
    """``WorldState`` (``t``, the decoded ``frames [B, L, C, H, W]``) plus the model-space
    history the sampler conditions on.

    Attributes:
        x: the history in the model's space (pixels or latents) ``[B, L, c, h, w]``.
        cond: its per-frame (per-latent) conditions ``[B, L, D]``.
        kv: ``carry_history``: the network's cache of ``x``, or ``None`` (re-encoded at the
            next step).
        anchor_offset: anchored decoding: ``x_a - D(z_a)`` ``[B, C, H, W]``, added to every
            decoded frame; ``None`` without.
        stream: latent steps of ``k > 1`` frames: the tokenizer's streaming-decode state after
            every latent so far (immutable, so a copied state decodes on from where it was);
            ``None`` without.
    """

    x: Tensor | None = None
    cond: Tensor | None = None
    kv: Tensor | None = None
    anchor_offset: Tensor | None = None
    stream: Any = None

    def advanced(
        self, new: Tensor, cond: Tensor, frames: Tensor, kv: Tensor | None, keep: int,
        stream: Any = None,
    ) -> DiffusionState:  # fmt: skip
        """The state after the generated ``new [B, c, h, w]`` (its condition ``cond [B, D]``,
        decoded to ``frames [B, k, C, H, W]``, the history cache ``kv``): the last ``keep``
        entries of the history (``keep · k`` decoded frames)."""
        return DiffusionState(
            t=self.t + frames.shape[1],
            frames=torch.cat([self.frames, frames], dim=1)[:, -keep * frames.shape[1] :],
            x=torch.cat([self.x, new[:, None]], dim=1)[:, -keep:],
            cond=torch.cat([self.cond, cond[:, None]], dim=1)[:, -keep:],
            kv=kv,
            anchor_offset=self.anchor_offset,
            stream=stream,
        )
