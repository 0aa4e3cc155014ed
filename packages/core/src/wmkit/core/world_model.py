"""Shared behaviour for ``WorldModel`` implementations: input checks and step-wise rollout."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.core.action_spec import ActionSpec
from wmkit.core.protocols import Rollout, StepOutput, WorldState
from wmkit.core.video import check_video

__all__ = ["MarkovStepMixin", "StepwiseRolloutMixin", "check_world_model_inputs"]


def check_world_model_inputs(
    spec: ActionSpec,
    context_frames: Tensor,
    actions: Tensor | None = None,
    context_actions: Tensor | None = None,
) -> None:
    """Validate ``rollout``/``reset`` inputs: video layout and range, actions against the spec,
    and matching batch sizes; errors name the argument."""
    check_video(context_frames, "context_frames")
    b, t0 = context_frames.shape[:2]
    if t0 < 1:
        raise ValueError("context_frames needs at least one frame (T0 >= 1)")
    for name, acts in (("actions", actions), ("context_actions", context_actions)):
        if acts is None:
            continue
        spec.validate(acts, name=name)
        if acts.shape[0] != b:
            raise ValueError(f"{name} has batch size {acts.shape[0]} but context_frames has {b}")
    if context_actions is not None and context_actions.shape[1] not in (t0 - 1, t0):
        raise ValueError(
            f"context_actions must have T0 - 1 = {t0 - 1} (between context frames) or T0 = "
            f"{t0} steps; got {context_actions.shape[1]}"
        )


class StepwiseRolloutMixin:
    """``rollout`` as ``reset`` + one ``step`` per action, the protocol's definition.

    Models with a faster batched rollout override it, and the conformance suite checks that
    the override equals this loop.
    """

    action_spec: ActionSpec

    @torch.no_grad()
    def rollout(
        self,
        context_frames: Tensor,
        actions: Tensor,
        context_actions: Tensor | None = None,
        **reset_options: Any,
    ) -> Rollout:
        """``reset(context_frames, context_actions, **reset_options)`` (e.g. a goal frame),
        then one ``step`` per action ``[B, T, ...]``."""
        check_world_model_inputs(self.action_spec, context_frames, actions, context_actions)
        state: WorldState = self.reset(context_frames, context_actions, **reset_options)  # type: ignore[attr-defined]
        frames, rewards, dones = [], [], []
        for t in range(actions.shape[1]):
            out = self.step(state, actions[:, t])  # type: ignore[attr-defined]
            frames.append(out.frame)
            rewards.append(out.reward)
            dones.append(out.done)
            state = out.state
        stacked = torch.stack(frames, dim=1)  # [B, T, C, H, W]
        return Rollout(
            frames=stacked,
            rewards=None if any(r is None for r in rewards) else torch.stack(rewards, dim=1),
            dones=None if any(d is None for d in dones) else torch.stack(dones, dim=1),
        )


class MarkovStepMixin(StepwiseRolloutMixin):
    """``reset`` / ``step`` of a model whose next frame depends on the last frame and the
    action alone: the state is the last frame, and subclasses define ``transition(frame [B, C,
    H, W], action [B, ...]) -> (next frame [B, C, H, W], reward [B] | None)``."""

    def transition(self, frame: Tensor, action: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        return WorldState(t=context_frames.shape[1], frames=context_frames[:, -1:])

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        frame, reward = self.transition(state.frames[:, -1], action)
        return StepOutput(frame, reward, WorldState(t=state.t + 1, frames=frame.unsqueeze(1)))
