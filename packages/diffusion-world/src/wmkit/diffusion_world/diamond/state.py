"""``DiamondState``: what a :class:`~wmkit.diffusion_world.diamond.DiamondWorldModel` carries
from one ``step`` to the next."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wmkit.core import WorldState

__all__ = ["DiamondState"]


@dataclass
class DiamondState(WorldState):
    """``WorldState`` (``t``; ``frames``: the last frames at the model's output resolution,
    as many as the upsampler conditions on, else ``n``) plus DIAMOND's buffers.

    Attributes:
        obs: the last ``n`` frames at the denoiser's resolution ``[B, n, C, h, w]``.
        actions: the ``n - 1`` actions taken at ``obs[:, :-1]`` ``[B, n - 1, ...]``; the
            action given to ``step`` completes them.
        rew_end_state: the reward/termination model's recurrent state (an LSTM's ``(h, c)``),
            ``None`` before its first step or without that model.
    """

    obs: Tensor | None = None
    actions: Tensor | None = None
    rew_end_state: tuple[Tensor, Tensor] | None = None
