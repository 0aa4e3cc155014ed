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

``decoding="diagonal"`` draws a future frame's ``h' × w'`` grid along anti-diagonals with
MineWorld's diagonal decoding (Guo et al. 2025, §3.3; the shared schedule is
:func:`~wmkit.ar_world.diagonal_decoding.diagonal_decode`): row ``r`` starts ``offset``
tokens behind row ``r - 1``, at most ``window`` rows at once, so one forward pass yields
several ids. It is an approximation: the released models were trained in raster order only
(as MineWorld's were), and a row's first id is predicted with a placeholder (the previous
future frame's id there, else the newest id of the row above) where raster order has the
real last id of the row above. With ``offset = w'`` (or ``window = 1``) each row starts
after the row above has ended and the schedule is raster order, id for id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wmkit.ar_world.diagonal_decoding import diagonal_decode
from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.sampling import Sampler

__all__ = ["DECODINGS", "IVideoGPTCursor", "IVideoGPTDecoder"]

DECODINGS = ("raster", "diagonal")
"""The orders a future frame's ids can be drawn in (``IVideoGPTDecoder(decoding=...)``)."""


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
        decoding: ``"raster"`` (the release's order) or ``"diagonal"`` (see the module
            docstring; needs ``use_cache=True``, since ids arrive out of order).
        window: diagonal decoding: most rows of a future grid decoded at once.
        offset: diagonal decoding: ids a row must have before the row below starts.
    """

    def __init__(
        self,
        sampler: Sampler,
        use_cache: bool = True,
        decoding: str = "raster",
        window: int = 4,
        offset: int = 1,
    ) -> None:
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}; got {decoding!r}")
        if decoding == "diagonal" and not use_cache:
            raise ValueError("decoding='diagonal' needs use_cache=True (ids arrive out of order)")
        if int(window) < 1 or int(offset) < 1:
            raise ValueError(f"window and offset must be >= 1; got {window}, {offset}")
        self.sampler = sampler
        self.use_cache = use_cache
        self.decoding = decoding
        self.window, self.offset = int(window), int(offset)

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
        self._feed(model, cursor, x)
        if self.decoding == "diagonal":
            ids = self._diagonal_frame(model, layout, cursor)  # [B, n]
        else:
            tokens = []
            for _ in range(layout.future_tokens):
                token = self.sampler(cursor.logits)[:, None]  # [B, 1]
                tokens.append(token)
                self._feed(model, cursor, model.llm.embed(token))
            ids = torch.cat(tokens, dim=1)
        cursor.ids = torch.cat([cursor.ids, slot, ids], dim=1)
        return layout.future_grid_of(ids)

    def _diagonal_frame(
        self, model: IVideoGPTTransformer, layout: IVideoGPTLayout, cursor: IVideoGPTCursor
    ) -> Tensor:
        """The ``n`` ids ``[B, n]`` of the frame whose slot was just fed, along
        anti-diagonals; leaves the cache holding the whole frame and ``cursor.logits`` at the
        output of its last id (what predicts the next slot)."""
        h, w = layout.future_grid
        b, n = cursor.ids.shape[0], layout.future_tokens
        start = cursor.ids.shape[1] + 1  # the frame's first id follows its slot
        previous = None
        if cursor.ids.shape[1] > layout.prelude_length:  # the last future frame's ids
            previous = cursor.ids[:, -n:].reshape(b, h, w)
        last: list[Tensor] = []

        def feed(ids: Tensor, index: Tensor) -> Tensor:
            x = model.llm.embed(ids)  # [B, S, D]
            out = model.llm(embeds=x, positions=start + index, cache=cursor.cache)
            last[:] = [out[:, -1]]  # the final pass feeds the grid's last id, last
            return out  # [B, S, V]

        grid = diagonal_decode(
            feed, cursor.logits, h, w, self.sampler, self.window, self.offset, previous
        )  # [B, h, w]
        cursor.logits = last[0]
        return grid.reshape(b, n)

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
