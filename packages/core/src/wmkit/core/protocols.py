"""The contract between wmkit packages: `Tokenizer`, `WorldModel`, `LatentActionModel`.

Packages never import each other; a world model receives *any* object that satisfies
``Tokenizer``, an evaluator or play server *any* ``WorldModel``. The protocols are
``runtime_checkable`` so composition code can check membership with ``isinstance`` (which
checks that the members exist; ``wmkit.core.testing`` checks that they behave).

Tensors (DESIGN.md §3): video ``float [B, T, C, H, W]`` in [-1, 1]; actions
``[B, T, *action_spec.action_shape]``, action ``t`` taken after observing frame ``t``;
rewards and dones ``[B, T]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from torch import Tensor

from wmkit.core.action_spec import ActionSpec

__all__ = [
    "LatentActionModel",
    "Latents",
    "Rollout",
    "StepOutput",
    "Tokenizer",
    "WorldModel",
    "WorldState",
]


@dataclass
class Latents:
    """What ``Tokenizer.encode`` returns.

    Attributes:
        values: discrete tokenizers: token ids ``long [B, T', h, w]``; continuous:
            ``float [B, T', C, h, w]``. ``T'`` is the number of latent frames (for a causal
            tokenizer with temporal compression ``t`` and ``T = 1 + k·t`` input frames,
            ``T' = 1 + k``). For a compressive tokenizer these are the context frames' tokens.
        kind: ``"discrete"`` or ``"continuous"``.
        future: compressive tokenizers only: tokens of the frames after the context,
            ``long [B, T - T0, h', w']`` (fewer per frame than ``values``).
        context_indices: compressive tokenizers only: which input frames were the context.
        context_frames: compressive tokenizers only, optional: the real context frames
            ``float [B, T0, C, H, W]`` (in ``context_indices`` order). A tokenizer that decodes
            future frames relative to the context (``future_residual``) uses them instead of
            the context tokens' reconstruction; ``encode`` fills them in, and a world model
            that keeps its observed frames passes them along.
    """

    values: Tensor
    kind: Literal["discrete", "continuous"]
    future: Tensor | None = None
    context_indices: tuple[int, ...] | None = None
    context_frames: Tensor | None = None


@runtime_checkable
class Tokenizer(Protocol):
    """Maps video to latents (token ids or continuous maps) and back."""

    @property
    def kind(self) -> Literal["discrete", "continuous"]: ...

    @property
    def vocab_size(self) -> int | None:
        """Number of token ids (discrete), else ``None``."""
        ...

    @property
    def latent_channels(self) -> int | None:
        """Channels of continuous latents, else ``None``."""
        ...

    @property
    def spatial_compression(self) -> int: ...

    @property
    def temporal_compression(self) -> int: ...

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Shape of ``encode(video).values`` without the batch dim, for a video of that size."""
        ...

    def encode(self, video: Tensor) -> Latents: ...

    def decode(self, latents: Latents | Tensor) -> Tensor:
        """Latents (or their ``values`` tensor) → video ``float [B, T, C, H, W]``."""
        ...


@dataclass
class WorldState:
    """A world model's state between ``step`` calls.

    Models subclass it (adding caches, token histories, noise levels); callers treat it as
    opaque and only read ``t``, the number of frames observed or generated so far, and
    ``frames``, the most recent frames the model keeps as context ``[B, T, C, H, W]``.
    """

    t: int
    frames: Tensor
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutput:
    """Result of one ``WorldModel.step``: the next frame ``[B, C, H, W]``, its predicted
    reward ``[B]`` (``None`` if the model has no reward head) and the new state.

    A model whose latent step spans ``k > 1`` frames (:mod:`wmkit.core.latent_steps`) serves
    one frame per call, ``lag`` actions behind the action just taken (``k - 1`` once its
    first latent step is complete), and sets ``new_frames`` ``[B, k, C, H, W]`` on the calls
    that generate a latent step (the frames it will serve next). Per-frame models leave
    ``new_frames`` ``None`` and ``lag`` 0: ``frame`` follows ``action``.
    """

    frame: Tensor
    reward: Tensor | None
    state: WorldState
    done: Tensor | None = None
    new_frames: Tensor | None = None
    lag: int = 0


@dataclass
class Rollout:
    """Result of ``WorldModel.rollout``: generated frames ``[B, T, C, H, W]`` (one per action)
    and rewards/dones ``[B, T]`` where the model predicts them."""

    frames: Tensor
    rewards: Tensor | None = None
    dones: Tensor | None = None


@runtime_checkable
class WorldModel(Protocol):
    """An interactive world model: observe context frames, then take actions one at a time.

    ``reset(context_frames [B, T0, C, H, W], context_actions [B, T0 - 1, ...] | None)``
    consumes the context (actions between context frames, if the model uses them);
    ``step(state, action [B, ...])`` returns the frame that follows ``action``;
    ``rollout(context_frames, actions [B, T, ...])`` generates ``T`` frames, equal to
    ``reset`` followed by ``T`` ``step`` calls under the same seed.
    """

    @property
    def action_spec(self) -> ActionSpec: ...

    def reset(
        self, context_frames: Tensor, context_actions: Tensor | None = None
    ) -> WorldState: ...

    def step(self, state: WorldState, action: Tensor) -> StepOutput: ...

    def rollout(
        self,
        context_frames: Tensor,
        actions: Tensor,
        context_actions: Tensor | None = None,
    ) -> Rollout: ...


@runtime_checkable
class LatentActionModel(Protocol):
    """Latent actions learned from action-free video (IGOR, LAPA, Genie).

    ``infer(frames [B, T, C, H, W])`` → latent actions ``[B, T - 1, *latent_action_spec
    .action_shape]`` (one per transition); ``apply(frame [B, C, H, W], latent_action)`` →
    the predicted next frame ``[B, C, H, W]``.
    """

    @property
    def latent_action_spec(self) -> ActionSpec: ...

    def infer(self, frames: Tensor) -> Tensor: ...

    def apply(self, frame: Tensor, latent_action: Tensor) -> Tensor: ...
