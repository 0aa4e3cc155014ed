"""`IVideoGPTWorldModel`: iVideoGPT (Wu et al. 2024) as a ``wmkit.core.WorldModel``.

It composes a frozen compressive tokenizer (any ``wmkit.core.Tokenizer`` whose
``encode(video, context_frames=T0)`` gives the context ids in ``Latents.values`` and raw
dynamics ids in ``Latents.future``, and whose ``decode`` takes them back), the Llama
transformer with its optional action projection (:class:`IVideoGPTTransformer`), the token
order (:class:`IVideoGPTLayout`) and the frame-by-frame decoder (:class:`IVideoGPTDecoder`).
The three released kinds are one class:

- action-conditioned (``action_spec`` continuous ``[A]``): ``step(state, action)`` adds the
  action to the slot of the frame it leads to;
- action-free (``action_spec=None``): the model's only action is ``0`` ("advance"), its
  ``action_spec`` is ``ActionSpec.discrete(1)``;
- goal-conditioned (``goal_conditioned=True``, action-free weights): ``reset`` (and
  ``rollout``) take a ``goal_frame`` that becomes context frame 0 (as
  ``inference/predict.py`` moves the clip's last frame to the front), and it stays pinned.

Where we differ from ``predict.py``: it generates a fixed segment at once; here frames come one
``step`` at a time from one KV cache, and when the sequence reaches ``max_frames`` (the
training segment length) the newest frames are re-encoded as the context and decoding goes
on, so a rollout can be longer than the segment. A tokenizer with ``decode_context`` /
``decode_future`` (``IVideoGPTTokenizer``) decodes the context once per context and each new
frame from those cached features, as the original's ``detokenize`` decodes a whole segment at
once; any other tokenizer decodes context and frame with ``decode`` at every step. Context
actions are not used: iVideoGPT's sequence has no action before the first future frame's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from wmkit.ar_world.frame_codec import FrameCodec, load_tokenizer
from wmkit.ar_world.frozen_tokenizer import FrozenTokenizerMixin
from wmkit.ar_world.ivideogpt_decoding import IVideoGPTCursor, IVideoGPTDecoder
from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.llama import LlamaConfig
from wmkit.ar_world.sampling import Sampler
from wmkit.core import (
    ActionSpec,
    Latents,
    PretrainedMixin,
    StepOutput,
    StepwiseRolloutMixin,
    WorldState,
    check_world_model_inputs,
)

__all__ = ["IVideoGPTState", "IVideoGPTWorldModel"]

ADVANCE = ActionSpec.discrete(1, names=("advance",))
"""The action space of an action-free model: one action, "produce the next frame"."""


@dataclass
class IVideoGPTState(WorldState):
    """Between ``step`` calls: the goal frame (goal-conditioned models), the newest observed
    or generated frames that would become the next context, the context ids the sequence
    starts with, how many future frames follow them, and the decoding cursor (KV cache).

    ``step`` advances the cursor in place: keep using the returned state, or ``clone()`` one
    to branch (planning).
    """

    goal: Tensor | None = None
    recent: list[Tensor] = field(default_factory=list)
    context_ids: Tensor | None = None
    decoded_context: Any = None
    generated: int = 0
    cursor: IVideoGPTCursor | None = None

    def clone(self) -> IVideoGPTState:
        return IVideoGPTState(
            t=self.t, frames=self.frames, extra=dict(self.extra), goal=self.goal,
            recent=list(self.recent), context_ids=self.context_ids,
            decoded_context=self.decoded_context, generated=self.generated,
            cursor=None if self.cursor is None else self.cursor.clone(),
        )  # fmt: skip


class IVideoGPTWorldModel(FrozenTokenizerMixin, nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """iVideoGPT's interactive world model (see the module docstring).

    Args:
        tokenizer: the frozen compressive tokenizer, or the directory it was saved to
            (``wmkit.core.load_pretrained``); ``save_pretrained`` stores it in ``tokenizer/``.
        llama: the transformer's shape (``vocab_size`` = the layout's ``n_vq + n_dyn + 2``).
        layout: the token layout (``context_frames`` = the tokenizer's context length).
        action_spec: continuous ``[A]`` actions of an action-conditioned model; ``None`` for
            an action-free or goal-conditioned one.
        goal_conditioned: context frame 0 is a goal frame given to ``reset``.
        frame_size: ``(H, W)`` of the frames (64×64 for the released models).
        max_frames: frames in one sequence, context (and goal) included: the training
            segment length (16 for BAIR and Open X-Embodiment, 12 for VP2 and RoboNet).
        temperature: sampling temperature (``0``: greedy).
        top_k: sample among the ``top_k`` most likely ids (``None``: all); upstream uses 100.
        use_cache: decode with the KV cache (``False``: recompute the sequence for every id).
        decoding: order of a future frame's ids: ``"raster"`` (the release's) or
            ``"diagonal"`` (MineWorld's diagonal decoding, fewer passes per frame; an
            approximation of the raster-trained model, see ``ivideogpt_decoding``).
        window: diagonal decoding: most rows of a future grid in flight.
        offset: diagonal decoding: lag in ids between a row and the row above
            (``offset`` = the grid's width is raster order).
    """

    frozen_components = ("tokenizer",)  # saved in tokenizer/ (PretrainedMixin)

    def __init__(
        self,
        tokenizer: str | os.PathLike | nn.Module,
        llama: LlamaConfig,
        layout: IVideoGPTLayout,
        action_spec: ActionSpec | None = None,
        goal_conditioned: bool = False,
        frame_size: tuple[int, int] = (64, 64),
        max_frames: int = 16,
        temperature: float = 1.0,
        top_k: int | None = 100,
        use_cache: bool = True,
        decoding: str = "raster",
        window: int = 4,
        offset: int = 1,
    ) -> None:
        super().__init__()
        llama = LlamaConfig(**llama) if isinstance(llama, dict) else llama
        layout = IVideoGPTLayout(**layout) if isinstance(layout, dict) else layout
        if llama.vocab_size != layout.vocab_size:
            raise ValueError(
                f"llama.vocab_size ({llama.vocab_size}) must be the layout's n_vq + n_dyn + 2 "
                f"= {layout.vocab_size}"
            )
        action_dim = None
        if action_spec is not None:
            action_spec = ActionSpec.coerce(action_spec, "IVideoGPTWorldModel action_spec")
            if action_spec.kind != "continuous" or len(action_spec.action_shape) != 1:
                raise ValueError(
                    "action_spec must be continuous with shape (A,) (iVideoGPT projects the "
                    f"action vector); got {action_spec.describe()}"
                )
            action_dim = action_spec.action_shape[0]
        if goal_conditioned and layout.context_frames < 2:
            raise ValueError("a goal-conditioned model needs context_frames >= 2 (goal + frame)")
        future = max_frames - layout.context_frames
        if future < 1 or layout.sequence_length(future) > llama.max_position_embeddings:
            most = layout.max_future_frames(llama.max_position_embeddings)
            raise ValueError(
                f"max_frames must leave 1 … {most} future frames after {layout.context_frames} "
                f"context frames; got {max_frames}"
            )
        self._spec = action_spec
        self.goal_conditioned = goal_conditioned
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.max_frames = max_frames
        self.layout = layout
        self.__dict__["tokenizer"] = load_tokenizer(tokenizer)  # frozen, not a submodule
        self._check_tokenizer()
        self.transformer = IVideoGPTTransformer(llama, action_dim)
        self.decoder = IVideoGPTDecoder(
            Sampler(temperature, top_k), use_cache, decoding, window, offset
        )

    def _check_tokenizer(self) -> None:
        """The tokenizer's grids and vocabularies, where it exposes them, must be the layout's."""
        tok, lay, (h, w) = self.tokenizer, self.layout, self.frame_size
        found = {
            "context grid": (tuple(tok.tokens_shape(1, h, w)[1:]), lay.context_grid),
            "context vocabulary": (tok.vocab_size, lay.context_vocab_size),
        }
        if hasattr(tok, "future_tokens_shape"):
            t0 = lay.context_frames
            future = tuple(tok.future_tokens_shape(t0 + 1, h, w, t0)[1:])
            found["future grid"] = (future, lay.future_grid)
        if hasattr(tok, "future_vocab_size"):
            found["future vocabulary"] = (tok.future_vocab_size, lay.future_vocab_size)
        bad = {k: f"tokenizer {a} vs layout {b}" for k, (a, b) in found.items() if a != b}
        if bad:
            raise ValueError(f"tokenizer does not match the layout at {self.frame_size}: {bad}")

    # ------------------------------------------------------------------ nn.Module plumbing
    @property
    def action_spec(self) -> ActionSpec:
        return self._spec if self._spec is not None else ADVANCE

    @property
    def action_conditioned(self) -> bool:
        return self._spec is not None

    def forward(
        self, context_ids: Tensor, future_ids: Tensor, actions: Tensor | None = None
    ) -> Tensor:
        """Teacher-forced logits ``[B, L, V]`` of the sequence of ``context_ids``
        ``[B, T0, h, w]`` and raw ``future_ids`` ``[B, F, h', w']`` (with the clip's
        ``actions`` ``[B, T0 + F, A]`` for an action-conditioned model)."""
        if actions is not None:
            self.action_spec.validate(actions, name="actions")
        ids = self.layout.build(context_ids, future_ids)  # [B, L]
        return self.transformer(ids, self.layout, actions)

    # ------------------------------------------------------------------ frames <-> ids
    def _check_frames(self, frames: Tensor, name: str) -> None:
        FrameCodec(self.tokenizer, self.frame_size).check(frames, name)

    def encode_context(self, frames: Tensor) -> Tensor:
        """Context frames ``[B, T0, C, H, W]`` in [-1, 1] → context ids ``[B, T0, h, w]``."""
        latents = self.tokenizer.encode(frames, context_frames=self.layout.context_frames)
        ids = latents.values
        self.layout.check_context(ids, "the tokenizer's context ids")
        return ids

    @property
    def caches_context(self) -> bool:
        """The tokenizer decodes the context once for many future frames (``decode_context``
        and ``decode_future``, as ``IVideoGPTTokenizer``)."""
        return hasattr(self.tokenizer, "decode_context") and hasattr(
            self.tokenizer, "decode_future"
        )

    def decode_future(self, context_ids: Tensor, grid: Tensor, decoded: Any = None) -> Tensor:
        """One future frame's raw dynamics ids ``[B, h', w']`` → frame ``[B, C, H, W]`` in
        [-1, 1], decoded against ``context_ids`` ``[B, T0, h, w]``, or against ``decoded``,
        their ``tokenizer.decode_context`` (the same frame without decoding the context)."""
        if decoded is not None:
            frame = self.tokenizer.decode_future(decoded, grid[:, None])[:, -1]  # [0, 1] scale
            return (frame * 2 - 1).clamp(-1, 1)
        latents = Latents(
            values=context_ids,
            kind="discrete",
            future=grid[:, None],
            context_indices=tuple(range(self.layout.context_frames)),
        )
        return self.tokenizer.decode(latents)[:, -1].clamp(-1, 1)

    # ------------------------------------------------------------------ WorldModel
    @property
    def observed_context_frames(self) -> int:
        """Frames of the context that are observations (the goal takes one slot)."""
        return self.layout.context_frames - int(self.goal_conditioned)

    @torch.no_grad()
    def reset(
        self,
        context_frames: Tensor,
        context_actions: Tensor | None = None,
        *,
        goal_frame: Tensor | None = None,
    ) -> IVideoGPTState:
        """Encode and prefill the context.

        Args:
            context_frames: ``[B, T0, C, H, W]`` in [-1, 1], at least the model's
                ``observed_context_frames``; the newest of them are the context.
            context_actions: accepted for the protocol and ignored (see the module docstring).
            goal_frame: ``[B, C, H, W]``: the goal of a goal-conditioned model (required
                there, refused elsewhere).
        """
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        self._check_frames(context_frames, "context_frames")
        n = self.observed_context_frames
        if context_frames.shape[1] < n:
            raise ValueError(
                f"context_frames must have at least {n} frames (the model's context"
                f"{' after the goal' if self.goal_conditioned else ''}); got "
                f"{context_frames.shape[1]}"
            )
        if self.goal_conditioned != (goal_frame is not None):
            raise ValueError(
                "this goal-conditioned model needs goal_frame [B, C, H, W] in reset"
                if self.goal_conditioned
                else "goal_frame is only for goal-conditioned models (goal_conditioned=True)"
            )
        if goal_frame is not None:
            self._check_frames(goal_frame.unsqueeze(1), "goal_frame")
            if goal_frame.shape[0] != context_frames.shape[0]:
                raise ValueError(
                    f"goal_frame has batch size {goal_frame.shape[0]} but context_frames has "
                    f"{context_frames.shape[0]}"
                )
        state = IVideoGPTState(
            t=context_frames.shape[1],
            frames=context_frames[:, -1:],
            goal=goal_frame,
            recent=list(context_frames[:, -n:].unbind(1)),
        )
        self._anchor(state)
        return state

    def _anchor(self, state: IVideoGPTState) -> None:
        """Encode the goal and the newest frames as the context and prefill it."""
        frames = ([state.goal] if state.goal is not None else []) + state.recent
        state.context_ids = self.encode_context(torch.stack(frames, dim=1))
        if self.caches_context:
            state.decoded_context = self.tokenizer.decode_context(state.context_ids)
        future = self.max_frames - self.layout.context_frames
        state.cursor = self.decoder.start(self.transformer, self.layout, state.context_ids, future)
        state.generated = 0

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        """Take ``action`` ``[B, ...]`` after the last frame; returns the next frame."""
        if not isinstance(state, IVideoGPTState) or state.cursor is None:
            raise TypeError(
                f"state must come from IVideoGPTWorldModel.reset; got {type(state).__name__}"
            )
        self.action_spec.validate(action, name="action", batch_dims=1)
        b = state.recent[-1].shape[0]
        if action.shape[0] != b:
            raise ValueError(f"action has batch size {action.shape[0]} but the state has {b}")
        if state.generated == self.max_frames - self.layout.context_frames:
            self._anchor(state)  # the sequence is full: the newest frames are the context
        act = action if self.action_conditioned else None
        grid = self.decoder.next_frame(self.transformer, self.layout, state.cursor, act)
        frame = self.decode_future(state.context_ids, grid, state.decoded_context)  # [B, C, H, W]
        state.generated += 1
        state.t += 1
        state.frames = frame[:, None]
        state.recent = [*state.recent[1:], frame]
        return StepOutput(frame=frame, reward=None, state=state)
