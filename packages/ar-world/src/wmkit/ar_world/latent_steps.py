"""``ARWorldModel`` over a temporally compressing discrete tokenizer: one sequence step per
latent, ``k`` frames each (:mod:`wmkit.core.latent_steps`).

A causal tokenizer with temporal compression ``k`` (VidTok FSQ at 4x8x8, Tang et al. 2024)
encodes ``T = 1 + n·k`` frames into ``1 + n`` grids of ids: latent 0 is frame 0 alone, latent
``j >= 1`` frames ``(j-1)·k + 1 … j·k``. The model's sequence steps are these latents::

    L_0 [A_0 … A_{k-1}] S_0   L_1 [A_k … A_{2k-1}] S_1   …

Action ``t`` follows frame ``t``, so the chunk after latent ``j`` holds actions ``j·k … j·k +
k - 1``: they lead to the frames of latent ``j + 1`` and condition it together, as one action
of :func:`~wmkit.core.step_action_spec` (``action_mode="tokens"``: ``k`` action tokens per
component of the action, MineWorld-style; ``"embedding"``: the ``k`` actions' features embedded
together at the slot). In a training clip of ``1 + n·k`` frames the last latent's chunk lies
past the clip (only action ``n·k`` of it is known): it is the null action, and as that chunk only
feeds the last slot, whose reward and done are masked out of the loss, nothing learns from it.

The slot after a chunk predicts the ``k`` rewards and dones of its ``k`` actions (a reward and
a done head of ``k`` outputs): the same information the per-frame slot has (the frames so far
and the actions, not their outcome), so ``step_latent`` returns honest per-frame rewards
``[B, k]`` aligned with the latent's frames, as per-frame ``step`` does.

A generated latent is decoded with the tokenizer's ``decode_next`` (core's
``StreamingDecoder``): its stream, started on the context at ``reset``, rides in the
:class:`~wmkit.ar_world.state.ARState`, so a rollout never decodes its history again and a
cloned state decodes its own continuation. A tokenizer without ``decode_next`` decodes the
window of latents the state keeps and takes its last ``k`` frames: exact where latents decode
independently, an approximation for a decoder that remembers earlier latents (the window's
first latent decodes as a video's first). A ``decode_next`` that refuses (VidTok's look-ahead
``temporal_upsample="trilinear"``) raises its error at ``reset``.

Where we differ: MineWorld (Guo et al. 2025) and iVideoGPT (Wu et al. 2024) are per-frame
(one frame's tokens and one action per step). Not supported with ``k > 1`` (clear errors):
compressive tokenizers (iVideoGPT's context/future split), goal and video-prompt prefixes,
and ``CrossFrameDecoder``'s cross-frame rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from wmkit.ar_world.state import ARState
from wmkit.ar_world.token_decoder import TokenDecoder
from wmkit.core import (
    LatentStep,
    StreamingDecoder,
    group_actions,
    trim_context,
)

if TYPE_CHECKING:
    from wmkit.ar_world.action_encoder import ActionEncoder
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = [
    "LatentClip",
    "check_latent_decoder",
    "decode_latent",
    "latent_clip",
    "latent_context_state",
    "step_latent",
]


def check_latent_decoder(decoder: TokenDecoder, k: int) -> None:
    """Refuse a decoder that generates across frames in ``rollout`` (``CrossFrameDecoder``)
    for ``k > 1``: its schedule interleaves per-frame steps, not buffered latent steps."""
    if k > 1 and type(decoder).rollout is not TokenDecoder.rollout:
        raise ValueError(
            f"{type(decoder).__name__} generates across frames in rollout; with a tokenizer of "
            f"temporal_compression {k} use a per-step decoder (RasterDecoder, DiagonalDecoder)"
        )


def latent_context_state(
    model: ARWorldModel, context_frames: Tensor, context_actions: Tensor | None
) -> ARState:
    """The state ``reset`` starts from (not prefilled yet): the last ``1 + n·k`` context frames
    encoded into ``1 + n`` latents, as many of the newest as the window holds, the grouped
    actions between them, and the decode stream after all of them."""
    k = model.frames_per_step
    frames, actions = trim_context(context_frames, context_actions, k)
    latents = model.encode_frames(frames, "context_frames")  # [B, 1 + n, h, w]
    grouped = None if actions is None else group_actions(actions, model.action_spec, k)
    tokens = list(latents.unbind(1))
    between = [None if grouped is None else grouped[:, i] for i in range(len(tokens) - 1)]
    keep = min(len(tokens), model.max_frames)
    stream = None
    if isinstance(model.tokenizer, StreamingDecoder):
        _, stream = model.tokenizer.decode_next(latents, None)
    return ARState(
        t=frames.shape[1],
        frames=frames[:, -1:],
        tokens=tokens[len(tokens) - keep :],
        actions=between[len(between) - (keep - 1) :] if keep > 1 else [],
        stream=stream,
    )


def decode_latent(model: ARWorldModel, state: ARState, grid: Tensor) -> Tensor:
    """The ``k`` frames ``[B, k, C, H, W]`` of the latent ``grid`` ``[B, h, w]`` just appended
    to ``state.tokens``: from the stream (``decode_next``), else from the kept window; updates
    the state's stream, frame count and last frame."""
    tok, k = model.tokenizer, model.frames_per_step
    if isinstance(tok, StreamingDecoder):
        frames, state.stream = tok.decode_next(grid[:, None], state.stream)
    else:
        frames = tok.decode(torch.stack(state.tokens, dim=1))[:, -k:]
    if frames.shape[1] != k:
        raise ValueError(
            f"the tokenizer decoded a latent into {frames.shape[1]} frames; expected {k} "
            "(temporal_compression)"
        )
    frames = frames.clamp(-1, 1)  # [B, k, C, H, W]
    state.t += k
    state.frames = frames[:, -1:]
    return frames


def step_latent(model: ARWorldModel, state: ARState, actions: Tensor) -> LatentStep:
    """One latent step: the ``k`` actions ``[B, k, ...]`` fed as one chunk, the latent's grid
    drawn by the model's decoder, its ``k`` frames decoded (``state`` is updated in place, as
    per-frame ``step`` does)."""
    if not isinstance(state, ARState):
        raise TypeError(f"state must be an ARState from reset; got {type(state).__name__}")
    k = model.frames_per_step
    model.action_spec.validate(actions, name="actions", batch_dims=2)
    b = state.tokens[-1].shape[0]
    if tuple(actions.shape[:2]) != (b, k):
        raise ValueError(
            f"actions must be [B, k, ...] = {(b, k)} (one latent step); got {tuple(actions.shape)}"
        )
    out = model.decoder.step(model, state, group_actions(actions, model.action_spec, k)[:, 0])
    if k == 1:  # per-frame: one frame and a reward/done per step
        return LatentStep(out.frame[:, None], out.state, out.reward[:, None], out.done[:, None])
    return LatentStep(out.frame, out.state, out.reward, out.done)


@dataclass
class LatentClip:
    """A training clip as latent steps (:func:`latent_clip`).

    Attributes:
        actions: ``[B, L, *step_shape]``, the chunk of ``k`` actions after each latent.
        null: ``bool [B, L]``, true for the last latent's chunk (past the clip).
        rewards: ``[B, L, k]``, the chunk's rewards.
        dones: ``[B, L, k]``, the chunk's dones.
        mask: ``bool [B, L, k]``, which rewards and dones are targets.
    """

    actions: Tensor
    null: Tensor
    rewards: Tensor
    dones: Tensor
    mask: Tensor


def latent_clip(
    encoder: ActionEncoder,
    num_latents: int,
    k: int,
    actions: Tensor,
    rewards: Tensor,
    dones: Tensor,
    mask: Tensor,
) -> LatentClip:
    """Group a clip of ``1 + n·k`` frames' ``actions`` ``[B, >= n·k, ...]``, ``rewards``,
    ``dones`` and step ``mask`` ``[B, >= n·k]`` by latent step (``num_latents = 1 + n``); the
    last latent's chunk is null and its rewards are no targets."""
    n = num_latents - 1
    if actions.shape[1] < n * k or rewards.shape[1] < n * k:
        raise ValueError(
            f"a clip of {num_latents} latents ({1 + n * k} frames) needs {n * k} actions and "
            f"rewards; got {actions.shape[1]} and {rewards.shape[1]}"
        )
    b, spec = actions.shape[0], encoder.layout.spec
    grouped = actions[:, : n * k].reshape(b, n, *spec.action_shape)  # [B, n, *step_shape]
    chunks, null = encoder.pad(list(grouped.unbind(1)), b, actions.device)  # [B, n + 1, ...]

    def per_step(x: Tensor, fill: Any) -> Tensor:
        steps = x[:, : n * k].reshape(b, n, k)
        return torch.cat([steps, x.new_full((b, 1, k), fill)], dim=1)  # [B, n + 1, k]

    return LatentClip(chunks, null, per_step(rewards, 0), per_step(dones, 0), per_step(mask, False))
