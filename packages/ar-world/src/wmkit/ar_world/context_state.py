"""The decoding state ``ARWorldModel.reset`` starts from: the context frames' tokens and
the actions between them, after an optional pinned prefix (a goal frame, iVideoGPT's
goal-conditioned rearrangement; a demonstration clip, video-prompt conditioning), or, with a
compressive tokenizer, the newest ``T0`` frames as the context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from wmkit.ar_world.state import ARState
from wmkit.core import check_video, check_world_model_inputs

if TYPE_CHECKING:
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = ["compressive_state", "context_state"]


def _between(actions: Tensor | None, indices: range) -> list[Tensor | None]:
    """The actions ``[B, T, ...]`` at ``indices`` (``None``: unknown, the null action)."""
    return [None if actions is None else actions[:, i] for i in indices]


def _prefix(
    model: ARWorldModel,
    goal_frame: Tensor | None,
    prompt_frames: Tensor | None,
    prompt_actions: Tensor | None,
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Tokens and actions of the pinned prefix: the goal frame, then the prompt clip, each
    followed by a null action."""
    tokens: list[Tensor] = []
    actions: list[Tensor | None] = []
    if goal_frame is not None:
        check_video(goal_frame.unsqueeze(1), "goal_frame")
        tokens += model.encode_frames(goal_frame.unsqueeze(1), "goal_frame").unbind(1)
        actions.append(None)
    if prompt_frames is not None:
        check_world_model_inputs(model.action_spec, prompt_frames, None, prompt_actions)
        tokens += model.encode_frames(prompt_frames, "prompt_frames").unbind(1)
        actions += [*_between(prompt_actions, range(prompt_frames.shape[1] - 1)), None]
    if len(tokens) >= model.max_frames - 1:
        raise ValueError(f"goal/prompt take {len(tokens)} frames; max_frames is {model.max_frames}")
    return tokens, actions


def context_state(
    model: ARWorldModel,
    context_frames: Tensor,
    context_actions: Tensor | None,
    goal_frame: Tensor | None = None,
    prompt_frames: Tensor | None = None,
    prompt_actions: Tensor | None = None,
) -> ARState:
    """Per-frame layout: the prefix, then as many of the newest context frames as the window
    holds (not prefilled yet)."""
    b = context_frames.shape[0]
    prefix_tokens, prefix_actions = _prefix(model, goal_frame, prompt_frames, prompt_actions)
    room = model.max_frames - len(prefix_tokens)
    tokens = list(model.encode_frames(context_frames, "context_frames").unbind(1))
    t0 = len(tokens)
    acts = _between(context_actions, range(t0 - 1))
    keep = min(t0, room)
    return ARState(
        t=t0,
        frames=context_frames[:, -1:],
        prefix_tokens=[p.expand(b, -1, -1) for p in prefix_tokens],
        prefix_actions=prefix_actions,
        tokens=tokens[t0 - keep :],
        actions=acts[t0 - keep :],
    )


def compressive_state(
    model: ARWorldModel, context_frames: Tensor, context_actions: Tensor | None
) -> ARState:
    """Compressive layout: the newest ``T0`` frames anchored as the context (not prefilled
    yet)."""
    t0 = model.layout.t0
    model.codec.check(context_frames, "context_frames")
    total = context_frames.shape[1]
    if total < t0:
        raise ValueError(
            f"context_frames must have at least context_frames = {t0} frames (the "
            f"compressive layout's context); got {total}"
        )
    acts = _between(context_actions, range(total - t0, total - 1))
    state = ARState(t=total, frames=context_frames[:, -1:], actions=acts)
    model.anchor(state, context_frames[:, -t0:])
    return state
