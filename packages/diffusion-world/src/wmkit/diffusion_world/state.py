"""``DiffusionState``: what a :class:`~wmkit.diffusion_world.DiffusionWorldModel` carries from one
``step`` to the next."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wmkit.core import WorldState

__all__ = ["DiffusionState"]


@dataclass
class DiffusionState(WorldState):
    """``WorldState`` (``t``, the decoded ``frames [B, L, C, H, W]``) plus the model-space
    history the sampler conditions on.

    Attributes:
        x: the history in the model's space (pixels or latents) ``[B, L, c, h, w]``.
        cond: its per-frame conditions ``[B, L, D]``.
        kv: ``carry_history``: the network's cache of ``x``, or ``None`` (re-encoded at the
            next step).
        anchor_offset: anchored decoding: ``x_a - D(z_a)`` ``[B, C, H, W]``, added to every
            decoded frame; ``None`` without.
    """

    x: Tensor | None = None
    cond: Tensor | None = None
    kv: Tensor | None = None
    anchor_offset: Tensor | None = None
