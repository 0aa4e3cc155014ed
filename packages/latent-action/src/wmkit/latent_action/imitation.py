"""Imitation from a demonstration video (IGOR §4.2 "movement migration", Genie's playability).

``imitate`` infers the latent actions of a demo clip with a ``LatentActionModel`` and applies
them, one per step, in a new scene through any ``WorldModel`` whose actions are those latent
actions, returning the generated video. ``LatentDecoderWorldModel`` turns the latent action
model's own forward decoder into such a world model (Markov: the next frame from the last
one), so imitation works before a separate latent-action world model is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wmkit.core import (
    ActionSpec,
    LatentActionModel,
    MarkovStepMixin,
    WorldModel,
    check_video,
)

__all__ = ["ImitationResult", "LatentDecoderWorldModel", "imitate"]


class LatentDecoderWorldModel(MarkovStepMixin):
    """A ``WorldModel`` over latent actions: ``step`` = ``latent_model.apply(last frame, a)``.

    Args:
        latent_model: any ``wmkit.core.LatentActionModel``.
    """

    def __init__(self, latent_model: LatentActionModel) -> None:
        self.latent_model = latent_model

    @property
    def action_spec(self) -> ActionSpec:
        return self.latent_model.latent_action_spec

    def transition(self, frame: Tensor, action: Tensor) -> tuple[Tensor, None]:
        """The latent action model's next frame; no reward."""
        return self.latent_model.apply(frame, action), None  # [B, C, H, W]


@dataclass
class ImitationResult:
    """``frames`` the generated video ``[B, T - 1, C, H, W]`` (one frame per demo transition),
    ``latent_actions`` the demo's inferred latent actions ``[B, T - 1, ...]``."""

    frames: Tensor
    latent_actions: Tensor


@torch.no_grad()
def imitate(
    latent_model: LatentActionModel,
    demo: Tensor,
    context_frames: Tensor,
    world_model: WorldModel | None = None,
) -> ImitationResult:
    """Replay the motion of ``demo`` ``[1 or B, T, C, H, W]`` from ``context_frames``
    ``[B, T0, C, H, W]`` (a new scene).

    ``world_model`` takes the latent actions (its ``action_spec`` must match the latent
    action spec); default :class:`LatentDecoderWorldModel` over ``latent_model``.
    """
    check_video(demo, "demo")
    check_video(context_frames, "context_frames")
    if demo.shape[1] < 2:
        raise ValueError(f"demo needs at least 2 frames (T); got shape {tuple(demo.shape)}")
    b = context_frames.shape[0]
    if demo.shape[0] not in (1, b):
        raise ValueError(f"demo batch must be 1 or match context_frames' {b}; got {demo.shape[0]}")
    world_model = world_model or LatentDecoderWorldModel(latent_model)
    latent_model.latent_action_spec.check_compatible(
        world_model.action_spec, what="world model action spec vs latent action spec"
    )
    latents = latent_model.infer(demo)  # [1 or B, T - 1, ...]
    if latents.shape[0] != b:
        latents = latents.expand(b, *latents.shape[1:]).contiguous()
    rollout = world_model.rollout(context_frames, latents)
    return ImitationResult(frames=rollout.frames, latent_actions=latents)
