"""World models whose latent step spans ``k`` video frames.

A causal video tokenizer with temporal compression ``k`` (VidTok at 4x8x8, Tang et al. 2024;
the Wan 2.1 VAE, Wan team 2025; Cosmos, LTX, Hunyuan) encodes ``T = 1 + n·k`` frames into
``1 + n`` latents: the first latent holds frame 0 alone, latent ``j >= 1`` holds frames
``(j-1)·k + 1 … j·k``. A world model in that space (Matrix-Game 2.0 and Self-Forcing run on Wan
latents) predicts one latent, so ``k`` frames, per step. This module holds what every such
model shares, whatever its family:

- the actions of a latent step. Action ``t`` follows frame ``t`` (DESIGN.md §3), so latent
  ``j >= 1`` follows the ``k`` actions ``(j-1)·k … j·k - 1``, and they condition it together:
  :func:`step_action_spec` makes them one action of a wider spec and :func:`group_actions`
  groups a clip's actions so. The first latent (frame 0 alone) has no actions before it: the
  models give it their "no action" condition.
- the ``WorldModel`` contract. ``step(state, action)`` takes one action per call. The actions
  are buffered until a latent step's ``k`` are in; that call generates the step's ``k`` frames
  (:attr:`StepOutput.new_frames`) and the frames are served one per call from then on. Each
  call returns one frame, ``k - 1`` actions behind the action just taken
  (:attr:`StepOutput.lag`): the added latency of a latent step. Before the first latent step
  is complete the last observed frame is served again. ``rollout`` generates frames for any
  horizon: the last latent step's missing actions are filled with the last action given, and
  the frames after the horizon are dropped.
- :func:`trim_context`: the context a model can encode, the last ``1 + n·k`` frames.

A model implements :class:`LatentStepModel` (``frames_per_step`` and ``step_latent``, one
latent step from its own state) and calls :func:`buffered_step` / :func:`buffered_rollout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from wmkit.core.action_spec import ActionSpec
from wmkit.core.protocols import Rollout, StepOutput, WorldState

__all__ = [
    "BufferedState",
    "LatentStep",
    "LatentStepModel",
    "buffered_rollout",
    "buffered_step",
    "group_actions",
    "num_latent_steps",
    "start_buffered",
    "step_action_spec",
    "trim_context",
]


def step_action_spec(spec: ActionSpec, k: int) -> ActionSpec:
    """The ``k`` actions of one latent step as one action: a discrete action becomes ``k``
    multi-discrete components, multi-discrete components repeat ``k`` times, a continuous
    ``(d,)`` action becomes ``(k·d,)`` with its bounds and bins (component names get a ``@i``
    suffix; a discrete action's names, one per choice, are dropped).
    ``k = 1`` returns ``spec``."""
    if k < 1:
        raise ValueError(f"frames per latent step must be >= 1; got {k}")
    if k == 1:
        return spec
    if spec.kind == "discrete":  # its names are per choice, not per component
        return ActionSpec.multi_discrete([spec.n] * k)  # type: ignore[list-item]
    names = None if not spec.names else [f"{n}@{i}" for i in range(k) for n in spec.names]
    if spec.kind == "multi_discrete":
        return ActionSpec.multi_discrete(list(spec.nvec) * k, names=names)  # type: ignore[arg-type]
    return ActionSpec.continuous(
        (k * math.prod(spec.action_shape),), low=list(spec.low) * k,  # type: ignore[arg-type]
        high=list(spec.high) * k, bins=spec.bins, names=names,  # type: ignore[arg-type]
    )  # fmt: skip


def group_actions(actions: Tensor, spec: ActionSpec, k: int) -> Tensor:
    """Actions ``[B, n·k, *action_shape]`` → ``[B, n, *step_action_spec(spec, k).action_shape]``,
    the ``k`` consecutive actions of each latent step as one."""
    if actions.ndim < 2 or actions.shape[1] % k:
        raise ValueError(
            f"actions must be [B, n·{k}, ...] (whole latent steps of {k} actions); got "
            f"{tuple(actions.shape)}"
        )
    b, t = actions.shape[:2]
    return actions.reshape(b, t // k, *step_action_spec(spec, k).action_shape)


def num_latent_steps(num_frames: int, k: int, name: str = "frames") -> int:
    """``n`` for a clip of ``T = 1 + n·k`` frames; a clear error for any other ``T``."""
    if num_frames < 1 or (num_frames - 1) % k:
        raise ValueError(
            f"{name} must have 1 + n·{k} frames (1, {1 + k}, {1 + 2 * k}, ...) for a latent "
            f"step of {k} frames; got {num_frames}"
        )
    return (num_frames - 1) // k


def trim_context(
    context_frames: Tensor, context_actions: Tensor | None, k: int
) -> tuple[Tensor, Tensor | None]:
    """The last ``1 + n·k`` context frames ``[B, T0, ...]`` (``n = (T0 - 1) // k``: the older
    frames a causal tokenizer cannot start from are dropped) and the ``n·k`` actions between
    them (``context_actions`` ``[B, T0 - 1 or T0, ...]``; ``None`` stays ``None``)."""
    t0 = context_frames.shape[1]
    n = (t0 - 1) // k
    frames = context_frames[:, t0 - 1 - n * k :]
    if context_actions is None:
        return frames, None
    between = context_actions[:, : t0 - 1]  # a T0-th action follows the last frame: unused
    return frames, between[:, between.shape[1] - n * k :]


@dataclass
class LatentStep:
    """What :meth:`LatentStepModel.step_latent` returns: the step's frames ``[B, k, C, H, W]``
    in [-1, 1], the model's state after it, and per-frame rewards / dones ``[B, k]`` where the
    model predicts them."""

    frames: Tensor
    state: WorldState
    rewards: Tensor | None = None
    dones: Tensor | None = None


@runtime_checkable
class LatentStepModel(Protocol):
    """A world model generating ``frames_per_step`` frames per latent step."""

    @property
    def action_spec(self) -> ActionSpec: ...

    @property
    def frames_per_step(self) -> int: ...

    def step_latent(self, state: WorldState, actions: Tensor) -> LatentStep:
        """One latent step after ``state`` under its ``k`` actions ``[B, k, *action_shape]``."""
        ...


@dataclass
class BufferedState(WorldState):
    """The ``WorldModel`` state of a latent-step model between ``step`` calls.

    ``t`` counts the frames observed and served, ``frames`` is the last served (or observed)
    frame ``[B, 1, C, H, W]``. ``inner`` is the model's own state after its last latent step,
    ``pending`` the actions taken since, ``queue`` the generated frames not yet served
    ``[B, q, C, H, W]`` (with their ``queue_rewards`` / ``queue_dones`` ``[B, q]``), ``lag``
    the actions taken whose frames have not been served.
    """

    inner: WorldState | None = None
    pending: tuple[Tensor, ...] = ()
    queue: Tensor | None = None
    queue_rewards: Tensor | None = None
    queue_dones: Tensor | None = None
    lag: int = 0


def start_buffered(inner: WorldState, context_frames: Tensor) -> BufferedState:
    """The state after ``reset``: the model's ``inner`` state over ``context_frames [B, T0,
    ...]`` (already trimmed), nothing buffered."""
    return BufferedState(t=context_frames.shape[1], frames=context_frames[:, -1:], inner=inner)


def _pop(queue: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """``(first, rest)`` of a ``[B, q, ...]`` queue (``None`` when empty)."""
    if queue is None or queue.shape[1] == 0:
        return None, queue
    return queue[:, 0], queue[:, 1:]


def _cat(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None or a.shape[1] == 0:
        return b
    return None if b is None else torch.cat([a, b], dim=1)


def buffered_step(model: LatentStepModel, state: BufferedState, action: Tensor) -> StepOutput:
    """``WorldModel.step`` of a latent-step model (see the module docstring): buffer
    ``action [B, ...]``; on the ``k``-th, generate the latent step; serve the next frame."""
    if not isinstance(state, BufferedState):
        raise TypeError(f"state must come from this model's reset; got {type(state).__name__}")
    model.action_spec.validate(action, name="action", batch_dims=1)
    b = state.frames.shape[0]
    if action.shape[0] != b:
        raise ValueError(f"action has batch size {action.shape[0]} but the state has {b}")
    pending, inner = (*state.pending, action), state.inner
    queue, rewards, dones = state.queue, state.queue_rewards, state.queue_dones
    new = None
    if len(pending) == model.frames_per_step:
        out = model.step_latent(inner, torch.stack(pending, dim=1))  # type: ignore[arg-type]
        inner, pending, new = out.state, (), out.frames
        queue = _cat(queue, out.frames)
        rewards, dones = _cat(rewards, out.rewards), _cat(dones, out.dones)
    frame, queue = _pop(queue)
    reward, rewards = _pop(rewards)
    done, dones = _pop(dones)
    served = frame is not None
    if frame is None:  # the first latent step is not complete: the last frame again
        frame = state.frames[:, -1]
    new_state = BufferedState(
        t=state.t + int(served), frames=frame[:, None], inner=inner, pending=pending,
        queue=queue, queue_rewards=rewards, queue_dones=dones,
        lag=state.lag + 1 - int(served),
    )  # fmt: skip
    return StepOutput(frame, reward, new_state, done, new_frames=new, lag=new_state.lag)


def buffered_rollout(model: LatentStepModel, state: BufferedState, actions: Tensor) -> Rollout:
    """``T`` frames after ``state`` (from ``reset``) under ``actions [B, T, ...]``: the latent
    steps :func:`buffered_step` would generate, the last one's missing actions filled with the
    last action, the frames after ``T`` dropped."""
    k, horizon = model.frames_per_step, actions.shape[1]
    missing = -horizon % k
    if missing:
        actions = torch.cat([actions, actions[:, -1:].expand(-1, missing, *actions.shape[2:])], 1)
    inner = state.inner
    frames, rewards, dones = [], [], []
    for j in range(actions.shape[1] // k):
        out = model.step_latent(inner, actions[:, j * k : (j + 1) * k])  # type: ignore[arg-type]
        inner = out.state
        frames.append(out.frames)
        rewards.append(out.rewards)
        dones.append(out.dones)

    def joined(parts: list[Tensor | None]) -> Tensor | None:
        if any(p is None for p in parts):
            return None
        return torch.cat(parts, dim=1)[:, :horizon]  # type: ignore[arg-type]

    return Rollout(frames=joined(frames), rewards=joined(rewards), dones=joined(dones))  # type: ignore[arg-type]
