"""The ``step`` / ``rollout`` half of ``check_world_model``: per-frame models serve each action's
frame at once; models with ``k``-frame latent steps (:mod:`wmkit.core.latent_steps`) buffer
actions and serve one frame per call ``k - 1`` actions behind."""

from __future__ import annotations

import torch
from torch import Tensor

from wmkit.core.protocols import WorldModel
from wmkit.core.testing.asserts import assert_same, check_video_out

__all__ = ["check_buffered", "stepwise_frames"]


def stepwise_frames(
    model: WorldModel, context_frames: Tensor, actions: Tensor, frame_shape: tuple[int, ...]
) -> tuple[Tensor, list[Tensor], list[int]]:
    """``reset`` + one ``step`` per action: the served frames ``[B, T, ...]``, the
    ``new_frames`` of the calls that generated some, and each call's ``lag``."""
    state = model.reset(context_frames)
    served, generated, lags = [], [], []
    for t in range(actions.shape[1]):
        step = model.step(state, actions[:, t])
        check_video_out(step.frame, frame_shape, "step frame")
        served.append(step.frame)
        lags.append(step.lag)
        if step.new_frames is not None:
            generated.append(step.new_frames)
        state = step.state
    return torch.stack(served, 1), generated, lags


def check_buffered(
    rolled: Tensor,
    served: Tensor,
    generated: list[Tensor],
    lags: list[int],
    context_frames: Tensor,
    k: int,
    atol: float,
) -> None:
    """A model with ``k``-frame latent steps (:mod:`wmkit.core.latent_steps`): the latent
    steps ``step`` generates are ``rollout``'s frames, and call ``c`` serves frame
    ``c - (k - 1)`` (the last context frame before the first step is complete)."""
    steps = served.shape[1]
    whole = steps // k * k
    expected_lags = [min(c + 1, k - 1) for c in range(steps)]
    if lags != expected_lags:
        raise AssertionError(f"step lags {lags}; a {k}-frame latent step gives {expected_lags}")
    if len(generated) != steps // k:
        raise AssertionError(
            f"{steps} steps generated {len(generated)} latent steps (new_frames); expected "
            f"{steps // k}"
        )
    if whole:
        assert_same(
            rolled[:, :whole], torch.cat(generated, 1), atol=atol,
            what="rollout vs the new_frames of reset+step",
        )  # fmt: skip
    for c in range(steps):
        want = context_frames[:, -1] if c < k - 1 else rolled[:, c - (k - 1)]
        assert_same(want, served[:, c], atol=atol, what=f"frame served by step call {c}")
