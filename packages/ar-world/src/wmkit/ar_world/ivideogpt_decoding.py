"""Frame-by-frame decoding of iVideoGPT sequences (Wu et al. 2024, as ``inference/predict.py``
generates), with wmkit's KV cache.

Each future frame is its slot followed by ``n`` sampled ids:

- action-free: the first frame's ``sdf`` is the prompt's last token; after that the model
  emits the slot itself (it is sampled like any id, not forced), as one ``generate`` call
  over ``(n + 1)·N - 1`` new tokens does;
- action-conditioned: every frame's ``sdf`` is appended by the decoder with the frame's
  action added to its embedding (``HeadModelWithAction.generate``).

Ids are drawn from the whole vocabulary; the caller clamps future slots into the dynamics
range (:meth:`IVideoGPTLayout.parse_future`). Where we differ: upstream recomputes the whole
prefix for every action-conditioned frame; we keep one KV cache across frames
(``use_cache=False`` recomputes, to check that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.sampling import Sampler

__all__ = ["IVideoGPTCursor", "IVideoGPTDecoder"]


@dataclass
class IVideoGPTCursor:
    """Where decoding stands: the ids so far ``[B, S]``, the logits of the next id
    ``[B, V]``, and either the KV cache or (without one) every input embedding ``[B, S, D]``.
    """

    ids: Tensor
    logits: Tensor
    cache: KVCache | None = None
    embeds: Tensor | None = None

    def clone(self) -> IVideoGPTCursor:
        cache = None
        if self.cache is not None:
            c = self.cache
            cache = KVCache(
                [k.clone() for k in c.keys], [v.clone() for v in c.values], c.valid.clone(), c.end
            )
        return IVideoGPTCursor(self.ids, self.logits, cache, self.embeds)


class IVideoGPTDecoder:
    """Prefills a prelude and decodes one future frame at a time.

    Args:
        sampler: how ids are drawn (``Sampler(temperature=0)``: greedy).
        use_cache: keep a KV cache (``False``: recompute the whole sequence for every id).
    """

    def __init__(self, sampler: Sampler, use_cache: bool = True) -> None:
        self.sampler = sampler
        self.use_cache = use_cache

    def _feed(self, model: IVideoGPTTransformer, cursor: IVideoGPTCursor, x: Tensor) -> None:
        """Append input embeddings ``x`` ``[B, S, D]`` and set the next id's logits."""
        if cursor.cache is not None:
            logits = model.llm(embeds=x, cache=cursor.cache)  # [B, S, V]
        else:
            embeds = x if cursor.embeds is None else torch.cat([cursor.embeds, x], dim=1)
            cursor.embeds = embeds
            logits = model.llm(embeds=embeds)  # [B, S_all, V]
        cursor.logits = logits[:, -1]

    def start(
        self,
        model: IVideoGPTTransformer,
        layout: IVideoGPTLayout,
        context_ids: Tensor,
        future_frames: int,
    ) -> IVideoGPTCursor:
        """Prefill the prelude of ``context_ids`` ``[B, T0, h, w]``, with room for
        ``future_frames`` frames after it."""
        ids = layout.build(context_ids)  # [B, prelude]
        length = layout.sequence_length(future_frames)
        if length > model.config.max_position_embeddings:
            raise ValueError(
                f"{future_frames} future frames need {length} positions; the transformer has "
                f"{model.config.max_position_embeddings}"
            )
        cache = model.llm.new_cache(ids.shape[0], length) if self.use_cache else None
        cursor = IVideoGPTCursor(ids=ids, logits=ids.new_empty(0), cache=cache)
        self._feed(model, cursor, model.llm.embed(ids))
        return cursor

    def next_frame(
        self,
        model: IVideoGPTTransformer,
        layout: IVideoGPTLayout,
        cursor: IVideoGPTCursor,
        action: Tensor | None = None,
    ) -> Tensor:
        """Decode the next future frame; returns its raw dynamics ids ``long [B, h', w']``
        (out-of-range ids clamped) and advances ``cursor``.

        ``action`` ``[B, A]``: the action after the previous frame (action-conditioned
        models); the slot is then ``sdf`` plus its projection. Without it the first frame's
        slot is ``sdf`` and later slots are whatever the model emits.
        """
        b = cursor.ids.shape[0]
        first = cursor.ids.shape[1] == layout.prelude_length
        if action is not None or first:
            slot = cursor.ids.new_full((b, 1), layout.sdf)
        else:
            slot = self.sampler(cursor.logits)[:, None]  # [B, 1]
        x = model.llm.embed(slot)  # [B, 1, D]
        if action is not None:
            x = x + model.action_embeddings(action)[:, None]
        tokens = [slot]
        self._feed(model, cursor, x)
        for _ in range(layout.future_tokens):
            token = self.sampler(cursor.logits)[:, None]  # [B, 1]
            tokens.append(token)
            self._feed(model, cursor, model.llm.embed(token))
        cursor.ids = torch.cat([cursor.ids, *tokens], dim=1)
        return layout.future_grid_of(torch.cat(tokens[1:], dim=1))

    def generate(
        self,
        model: IVideoGPTTransformer,
        layout: IVideoGPTLayout,
        context_ids: Tensor,
        future_frames: int,
        actions: Tensor | None = None,
    ) -> Tensor:
        """The whole sequence ``long [B, prelude + (n + 1)·F]`` of ``context_ids`` and
        ``future_frames`` decoded frames (what upstream's ``generate`` returns: the prompt
        and ``(n + 1)·F - 1`` new ids). ``actions`` ``[B, T >= T0 - 1 + F, A]`` for an
        action-conditioned model: frame ``i`` follows action ``T0 - 1 + i``."""
        if actions is not None:
            need = layout.context_frames - 1 + future_frames
            if actions.ndim != 3 or actions.shape[1] < need:
                raise ValueError(
                    f"actions must be [B, T >= {need}, A] for {future_frames} frames after "
                    f"{layout.context_frames} context frames; got {tuple(actions.shape)}"
                )
        cursor = self.start(model, layout, context_ids, future_frames)
        for i in range(future_frames):
            act = None if actions is None else actions[:, layout.context_frames - 1 + i]
            self.next_frame(model, layout, cursor, act)
        return cursor.ids
