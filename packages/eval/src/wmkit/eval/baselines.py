"""Baselines every world model is shown beside (DESIGN.md §7).

- :class:`CopyLastFrame`: predicts that nothing changes. A world model that does not beat it
  has learned nothing about motion; it ignores actions, so its ΔPSNR is exactly 0.
- :func:`tokenizer_reconstruction`: the world model's own tokenizer encoding and decoding the
  real future. A latent world model cannot be sharper than its tokenizer: this is the ceiling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wmkit.core.action_spec import ActionSpec
from wmkit.core.protocols import StepOutput, Tokenizer, WorldState
from wmkit.core.video import check_video
from wmkit.core.world_model import StepwiseRolloutMixin, check_world_model_inputs

__all__ = ["CopyLastFrame", "tokenizer_reconstruction"]


class CopyLastFrame(StepwiseRolloutMixin):
    """A ``WorldModel`` that repeats the last context frame whatever the action."""

    def __init__(self, action_spec: ActionSpec) -> None:
        self._action_spec = action_spec

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        return WorldState(t=context_frames.shape[1], frames=context_frames[:, -1:])

    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        frame = state.frames[:, -1]
        return StepOutput(frame, None, WorldState(t=state.t + 1, frames=state.frames))


@torch.no_grad()
def tokenizer_reconstruction(tokenizer: Tokenizer, clip: Tensor, horizon: int) -> Tensor:
    """Encode and decode the whole ``clip [B, T, C, H, W]`` (so a causal tokenizer sees the
    context too) and return the reconstruction of its last ``horizon`` frames.

    A tokenizer with temporal compression ``t > 1`` encodes ``1 + n·t`` frames (VidTok, the Wan
    VAE): a clip of another length is padded at its start with copies of its first frame up
    to the next such length (VidTok pads its first frame so too), and the padding is dropped.
    """
    check_video(clip, "clip")
    t = int(getattr(tokenizer, "temporal_compression", 1))
    pad = -(clip.shape[1] - 1) % t
    if pad:
        clip = torch.cat([clip[:, :1].expand(-1, pad, -1, -1, -1), clip], dim=1)
    latents = tokenizer.encode(clip)
    recon = tokenizer.decode(latents)
    if recon.ndim != 5 or recon.shape[1] < horizon or recon.shape[2:] != clip.shape[2:]:
        raise ValueError(
            f"tokenizer reconstruction has shape {tuple(recon.shape)}; expected at least "
            f"{horizon} frames of {tuple(clip.shape[2:])} (clip length {clip.shape[1]} may not "
            "suit the tokenizer's temporal compression)"
        )
    return recon[:, -horizon:].clamp(-1, 1)
