"""Latent steps of ``k`` frames: a :class:`~wmkit.diffusion_world.DiffusionWorldModel` in the
latent space of a temporally compressing causal video tokenizer.

A causal video tokenizer with temporal compression ``k`` (VidTok, Tang et al. 2024,
arXiv:2412.13061; the Wan 2.1 VAE, Wan team 2025, arXiv:2503.20314) encodes ``1 + n·k``
frames into ``1 + n`` latents: latent 0 holds frame 0 alone, latent ``j >= 1`` the frames
``(j-1)·k + 1 … j·k`` (:mod:`wmkit.core.latent_steps`). With ``frames_per_step = k`` the world
model diffuses those latents as it diffuses frames at ``k = 1``: Diffusion Forcing (Chen et
al. 2024, arXiv:2407.01392) with one noise level per latent, the causal network over latents,
and one sampled latent, so ``k`` frames, per step.

- **Conditions.** Action ``t`` follows frame ``t``, so latent ``j >= 1`` follows the ``k``
  actions ``(j-1)·k … j·k - 1``; they condition it together, embedded as one action of
  :func:`~wmkit.core.latent_steps.step_action_spec` (:func:`latent_conditions`). Latent 0 has
  no action before it: it gets the learned "no action" vector, the one action dropout and the
  unconditional branch of guidance use (frame 0 of a clip is conditioned so at ``k = 1``
  too). Action dropout therefore drops a whole latent step's actions.
- **Decoding.** ``reset`` primes the tokenizer's streaming decode
  (:class:`~wmkit.core.StreamingDecoder`: ``decode_next(latents, stream) -> (frames,
  stream)``, the stream immutable and kept in the
  :class:`~wmkit.diffusion_world.state.DiffusionState`, so a copied state decodes on from where
  it was) with the context latents, and each latent step decodes its one new latent into its
  ``k`` frames: a rollout never decodes the history again. A tokenizer without
  ``decode_next`` takes the slower path: the kept latent window is decoded again each step and
  its last ``k`` frames kept (their causal decoder then starts at the window, not the video).
- **Protocol.** ``step`` and ``rollout`` are :func:`~wmkit.core.latent_steps.buffered_step` /
  :func:`~wmkit.core.latent_steps.buffered_rollout` (``k - 1`` frames of latency in play).

Where we differ: Wan generates a whole clip at once with bidirectional attention under a
text prompt; here its network is causalized (Vid2World) and generates one latent at a time
under its actions, as Matrix-Game 2.0 and Self-Forcing do on Wan latents (they inject
per-frame actions inside the blocks; we embed a step's actions as one condition). Reward and
done heads and ``anchored_decoding`` read one frame per transition: with ``k > 1`` the model
refuses them rather than guess per-frame rewards from a latent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.core import (
    ActionSpec,
    Rollout,
    StreamingDecoder,
    check_world_model_inputs,
    follow_device,
)
from wmkit.core.latent_steps import (
    BufferedState,
    LatentStep,
    buffered_rollout,
    group_actions,
    start_buffered,
    trim_context,
)
from wmkit.diffusion_world.action_embedding import ActionEmbedding
from wmkit.diffusion_world.state import DiffusionState

__all__ = ["LatentStepsMixin", "check_latent_steps", "latent_conditions"]


def check_latent_steps(frames_per_step: int, heads: Any, anchored_decoding: bool) -> None:
    """Refuse what ``k = frames_per_step > 1`` does not support (see the module docstring)."""
    if frames_per_step < 1:
        raise ValueError(f"frames_per_step must be >= 1; got {frames_per_step}")
    if frames_per_step > 1 and (heads is not None or anchored_decoding):
        raise ValueError(
            f"frames_per_step={frames_per_step}: reward/done heads and anchored_decoding read "
            "one frame per transition and are not supported with latent steps of several "
            "frames; build the model with heads=None and anchored_decoding=False"
        )


def latent_conditions(
    embed: ActionEmbedding,
    spec: ActionSpec,
    k: int,
    actions: Tensor | None,
    num_latents: int,
    batch: int,
) -> Tensor:
    """Per-latent conditions ``[B, num_latents, D]``: latent 0 (and every latent when
    ``actions`` is ``None``) gets the "no action" vector, latent ``j >= 1`` the embedding of
    actions ``(j-1)·k … j·k - 1`` of ``actions [B, >= (num_latents - 1)·k, ...]`` together
    (``embed`` is built over :func:`~wmkit.core.latent_steps.step_action_spec`). ``k = 1``:
    frame ``i`` gets action ``i - 1``."""
    null = embed.null_like((batch, 1))
    if actions is None or num_latents == 1:
        return null.expand(batch, num_latents, -1)
    grouped = group_actions(actions[:, : (num_latents - 1) * k], spec, k)  # [B, n, ...]
    return torch.cat([null, embed(grouped)], dim=1)


class LatentStepsMixin:
    """``reset`` / ``step_latent`` / ``rollout`` of a :class:`~wmkit.diffusion_world.
    DiffusionWorldModel` with ``frames_per_step = k`` (see the module docstring); ``k = 1``
    rolls out through ``reset`` + ``step`` as before."""

    frames_per_step: int
    action_embed: ActionEmbedding
    action_spec: ActionSpec
    context_window: int
    latent_scale: float
    sampling: Any
    window: Any
    tokenizer: Any

    def _reset_latent_steps(
        self, context_frames: Tensor, context_actions: Tensor | None
    ) -> BufferedState:
        """``reset`` with ``k > 1``: the last ``1 + n·k`` context frames encoded to ``1 + n``
        latents, their conditions, the streaming decode primed with them."""
        k, keep = self.frames_per_step, self.context_window - 1
        frames, actions = trim_context(context_frames, context_actions, k)
        x = self.encode(frames)  # type: ignore[attr-defined]  # [B, 1 + n, c, h, w]
        cond = self.frame_conditions(actions, frames.shape[1], frames.shape[0])  # type: ignore[attr-defined]
        stream = None
        if isinstance(self.tokenizer, StreamingDecoder):
            follow_device(self.tokenizer, x.device)
            _, stream = self.tokenizer.decode_next(x / self.latent_scale, None)
        inner = DiffusionState(
            t=frames.shape[1], frames=frames[:, -keep * k :], x=x[:, -keep:],
            cond=cond[:, -keep:], stream=stream,
        )  # fmt: skip
        return start_buffered(inner, frames)

    def _keep(self, kv: Tensor | None) -> int:
        """History entries kept after a step (``carry_history`` refreshes a full window)."""
        if kv is None and self.sampling.carry_history:
            return self.sampling.keep
        return self.context_window - 1

    @torch.no_grad()
    def step_latent(self, state: DiffusionState, actions: Tensor) -> LatentStep:
        """The latent after ``state`` under its ``k`` actions ``[B, k, *action_shape]``
        (sampled by the window sampler, with guidance and the history cache, as a frame at
        ``k = 1``), decoded to its ``k`` frames ``[B, k, C, H, W]``."""
        k, spec = self.frames_per_step, self.action_spec
        if not isinstance(state, DiffusionState):
            raise TypeError(
                f"step_latent takes the model's DiffusionState (a BufferedState's inner); got "
                f"{type(state).__name__}"
            )
        spec.validate(actions, name="latent step actions")
        if actions.shape[1] != k or state.x is None or actions.shape[0] != state.x.shape[0]:
            raise ValueError(
                f"a latent step takes [B, {k}, ...] actions (B = the state's batch); got "
                f"{tuple(actions.shape)}"
            )
        cond = self.action_embed(group_actions(actions, spec, k)[:, 0])  # [B, D]
        null = self.action_embed.null_like((actions.shape[0],))
        new, kv = self.window.next_frame(state.x, state.cond, cond, null, state.kv)
        frames, stream = self._decode_latent(state, new)
        return LatentStep(frames, state.advanced(new, cond, frames, kv, self._keep(kv), stream))

    def _decode_latent(self, state: DiffusionState, new: Tensor) -> tuple[Tensor, Any]:
        """The ``k`` frames of the new latent ``[B, c, h, w]`` and the stream after it."""
        if not isinstance(self.tokenizer, StreamingDecoder):  # the slower path: the window again
            window = torch.cat([state.x, new[:, None]], dim=1)
            return self._decode_raw(window)[:, -self.frames_per_step :].clamp(-1, 1), None  # type: ignore[attr-defined]
        follow_device(self.tokenizer, new.device)
        frames, stream = self.tokenizer.decode_next(new[:, None] / self.latent_scale, state.stream)
        return frames.float().clamp(-1, 1), stream

    @torch.no_grad()
    def rollout(
        self,
        context_frames: Tensor,
        actions: Tensor,
        context_actions: Tensor | None = None,
        **reset_options: Any,
    ) -> Rollout:
        """``k = 1``: ``reset`` + one ``step`` per action. ``k > 1``: the latent steps of
        :func:`~wmkit.core.latent_steps.buffered_rollout`, ``T`` frames for ``actions [B, T,
        ...]`` (the last step's missing actions are the last action repeated)."""
        if self.frames_per_step == 1:
            return super().rollout(context_frames, actions, context_actions, **reset_options)  # type: ignore[misc]
        check_world_model_inputs(self.action_spec, context_frames, actions, context_actions)
        state = self.reset(context_frames, context_actions, **reset_options)  # type: ignore[attr-defined]
        return buffered_rollout(self, state, actions)  # type: ignore[arg-type]
