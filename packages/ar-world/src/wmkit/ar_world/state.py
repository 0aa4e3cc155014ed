"""What an autoregressive world model returns from a teacher-forced pass, and what it carries
between decoding steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from wmkit.ar_world.kv_cache import KVCache
from wmkit.core import WorldState

__all__ = ["ARState", "ARWorldModelOutput"]


@dataclass
class ARWorldModelOutput:
    """Teacher-forced outputs for a clip of ``T`` steps.

    Attributes:
        frame_logits: ``[B, T - 1, n, V]``, logits of the tokens of frames ``1 … T - 1``
            (compressive: ``[B, T - T0, n, V_f]``, the future frames).
        reward: ``[B, T]`` predicted reward of each step's action (``k``-frame latent steps:
            ``[B, T, k]``, the reward of each of the step's ``k`` actions).
        done_logits: ``[B, T]`` logits of each step ending the episode (``[B, T, k]``).
    """

    frame_logits: Tensor
    reward: Tensor
    done_logits: Tensor


@dataclass
class ARState(WorldState):
    """Decoding state: the token window (pinned prefix + recent frames), the actions
    between its frames, and the KV cache (or, without a cache, the input embeddings).

    ``step`` updates the cache in place: keep using the returned state, or ``clone()`` one to
    branch (planning).

    With a temporally compressing tokenizer (``k``-frame latent steps,
    :mod:`wmkit.ar_world.latent_steps`) the tokens are latents' grids, ``t`` counts frames and
    ``stream`` is the tokenizer's ``decode_next`` stream after the latents decoded so far (an
    immutable value: a clone shares it and decodes its own continuation).
    """

    prefix_tokens: list[Tensor] = field(default_factory=list)
    prefix_actions: list[Tensor | None] = field(default_factory=list)
    tokens: list[Tensor] = field(default_factory=list)
    actions: list[Tensor | None] = field(default_factory=list)
    cache: KVCache | None = None
    inputs: Tensor | None = None
    pos: int = 0
    context_frames: Tensor | None = None
    recent_frames: list[Tensor] = field(default_factory=list)
    stream: Any = None

    def clone(self) -> ARState:
        cache = None
        if self.cache is not None:
            cache = KVCache(
                [k.clone() for k in self.cache.keys],
                [v.clone() for v in self.cache.values],
                self.cache.valid.clone(),
                self.cache.end,
                self.cache.static,
            )
        return ARState(
            t=self.t,
            frames=self.frames,
            extra=dict(self.extra),
            prefix_tokens=list(self.prefix_tokens),
            prefix_actions=list(self.prefix_actions),
            tokens=list(self.tokens),
            actions=list(self.actions),
            cache=cache,
            inputs=self.inputs,
            pos=self.pos,
            context_frames=self.context_frames,
            recent_frames=list(self.recent_frames),
            stream=self.stream,
        )
