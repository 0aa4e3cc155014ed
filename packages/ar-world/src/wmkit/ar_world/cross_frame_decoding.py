"""Diagonal decoding across frames (MineWorld, Guo et al. 2025, §3.3): when every action is
known in advance (``rollout``: evaluation, planning, Real2Sim), the next frame starts before
the current one ends.

The token grids of the ``F`` frames to generate are stacked into one tall grid of ``F·h``
rows and decoded with ``diagonal_decode``'s schedule: a row starts once the row above has
``offset`` tokens and fewer than ``window`` rows are in flight, *across* frame boundaries.
Rows keep their own sequence positions (frame ``f``'s tokens sit at frame ``f``'s positions in
the KV cache, written out of order; the cache's validity mask hides what is not written yet),
so every query sees only earlier positions: decoding stays strictly causal.

Between frame ``f - 1`` and frame ``f`` the sequence holds action ``f``'s tokens and slot (the
*prelude* of frame ``f``), whose slot output predicts frame ``f``'s first token. Where a
within-frame row would start on a placeholder, frame ``f``'s first row starts by feeding its
prelude, once frame ``f - 1``'s last row has ``offset`` tokens: the slot then sees frame
``f - 1`` only in part. When frame ``f - 1``'s last row ends, its real last token is fed
together with the prelude of frame ``f`` once more, so the cache (and the reward/done read at
the slot) end up computed from the complete frame ``f - 1`` before frame ``f + 1`` is
predicted. ``window=1`` is raster order over the whole rollout, token for token equal to
decoding the frames one by one; larger windows trade exactness for fewer forward passes (one
per ``offset`` ticks per row, about ``h·offset`` passes per frame instead of
``h + w`` for per-frame diagonal decoding).

Where we differ from MineWorld: the cross-frame overlap is bounded by the same ``window``
(rows in flight) as within a frame, unwritten cache slots are masked rather than attended as
zeros, and the prelude is re-fed once the previous frame is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from wmkit.ar_world.diagonal_decoding import DiagonalDecoder
from wmkit.ar_world.raster_decoding import index_tensor
from wmkit.core import Rollout, check_world_model_inputs

if TYPE_CHECKING:
    from wmkit.ar_world.state import ARState
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = ["CrossFrameDecoder", "CrossFrameFeedFn", "cross_frame_diagonal_decode"]

CrossFrameFeedFn = Callable[[Tensor, Tensor, Tensor, list[int]], tuple[Tensor, Tensor]]
"""``feed(ids [B, S], frame [S], grid_index [S], preludes) -> (logits [B, S, V],
prelude_logits [B, P, V])``: run the model, in one forward pass, on frame tokens (frame
``frame[i]``, flat grid index ``grid_index[i]``) and on the action tokens and slot of each
frame in ``preludes`` (``P`` frame numbers). Returns, for each frame token, the logits of the
token after it in raster order and, for each prelude, the slot's logits (the frame's first
token)."""


@dataclass
class _Schedule:
    """Per global row ``g = f·h + r``: tokens sampled, started, last token fed."""

    rows: int
    height: int
    width: int
    window: int
    offset: int
    count: list[int] = field(init=False)
    started: list[bool] = field(init=False)
    fed_last: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.count = [0] * self.rows
        self.started = [False] * self.rows
        self.fed_last = [False] * self.rows

    def plan(self) -> tuple[set[int], list[tuple[int, int, int | None, bool]], list[tuple]]:
        """Feeds of one tick: frame tokens ``(row, col, row_predicted_or_None, placeholder)``
        and preludes ``(frame, row_predicted_or_None)``; updates the state."""
        h, w = self.height, self.width
        toks: list[tuple[int, int, int | None, bool]] = []
        pres: list[tuple[int, int | None]] = []
        pending: set[int] = set()

        def start(g: int) -> None:
            self.started[g] = True
            pending.add(g)

        for g in range(self.rows):
            if not self.started[g] or self.fed_last[g] or self.count[g] == 0:
                continue
            c = self.count[g] - 1
            if self.count[g] < w:
                toks.append((g, c, g, False))
                pending.add(g)
                continue
            self.fed_last[g] = True  # the row is complete: feed its real last token
            nxt = g + 1 if g + 1 < self.rows and not self.started[g + 1] else None
            if nxt is not None:
                start(nxt)
            if (g + 1) % h == 0 and g + 1 < self.rows:
                toks.append((g, c, None, False))
                pres.append(((g + 1) // h, nxt))  # (re)feed the next frame's prelude
            else:
                toks.append((g, c, nxt, False))
        active = sum(1 for g in range(self.rows) if self.started[g] and self.count[g] < w)
        for g in range(1, self.rows):
            if (
                self.started[g]
                or not self.started[g - 1]
                or self.count[g - 1] < self.offset
                or active >= self.window
            ):
                continue
            start(g)
            active += 1
            if g % h == 0:
                pres.append((g // h, g))  # early prelude: the previous frame is unfinished
            else:
                toks.append((g - 1, w - 1, g, True))
        toks.sort(key=lambda f: (f[0], f[1]))
        pres.sort(key=lambda p: p[0])
        return pending, toks, pres

    def sources(
        self, toks: list[tuple[int, int, int | None, bool]], placeholder: bool
    ) -> list[int]:
        """Where each fed token's id lies in the buffer ``[frame before | frame 0 | …]``: its
        own, or for a placeholder the previous frame's token at that place if sampled (the
        frame before the first: if given), else the newest token of its row."""
        h, w = self.height, self.width
        n = h * w
        src = []
        for g, c, _, is_placeholder in toks:
            f, r = divmod(g, h)
            if not is_placeholder:
                src.append((f + 1) * n + r * w + c)
            elif f > 0 and self.count[g - h] > c:
                src.append(f * n + r * w + c)
            elif f == 0 and placeholder:
                src.append(r * w + c)
            else:
                src.append((f + 1) * n + r * w + self.count[g] - 1)
        return src


def cross_frame_diagonal_decode(
    feed: CrossFrameFeedFn,
    num_frames: int,
    height: int,
    width: int,
    sample: Callable[[Tensor], Tensor],
    batch: int,
    window: int = 4,
    offset: int = 1,
    placeholder: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Generate ``num_frames`` consecutive ``height × width`` token grids along anti-diagonals
    that run on across frame boundaries (see the module docstring).

    Args:
        feed: runs the model (see ``CrossFrameFeedFn``); must use a KV cache indexed by
            position, since tokens arrive out of order.
        num_frames: ``F`` frames, each after its own (known) action; the first prelude is
            fed first, so the frame before the first one must be complete.
        height: rows of one frame's grid.
        width: columns of one frame's grid.
        sample: logits ``[B, R, V]`` → ids ``[B, R]`` (e.g. a ``Sampler``); every row
            predicted in a tick is sampled in one call.
        batch: ``B``.
        window: most rows in flight, across frames (``1`` = raster order throughout).
        offset: tokens a row needs before the next row (or the next frame's first row) starts.
        placeholder: ``long [B, height, width]``, the frame before the first one, fed in place
            of a row's last token before it exists (for later frames: the previous generated
            frame where already sampled; else the newest token of that row).
        device: where the ids live.

    Returns:
        ids ``long [B, num_frames, height, width]``; every position fed last with its real
        token.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    if offset < 1:
        raise ValueError(f"offset must be >= 1; got {offset}")
    h, w = height, width
    n = h * w
    # ids of [the frame before | frame 0 | … | frame F-1]: each tick gathers what it feeds
    # with one index and writes what it samples with one scatter (see ``diagonal_decode``)
    buf = torch.zeros(batch, (num_frames + 1) * n, dtype=torch.long, device=device)
    if placeholder is not None:
        buf[:, :n] = placeholder.reshape(batch, n)
    sched = _Schedule(num_frames * h, h, w, window, offset)
    sched.started[0] = True
    pending: set[int] = {0}
    toks: list[tuple[int, int, int | None, bool]] = []
    pres: list[tuple[int, int | None]] = [(0, 0)]
    while toks or pres:
        src = sched.sources(toks, placeholder is not None)
        s = len(toks)
        rows = [p for _, _, p, _ in toks if p is not None] + [p for _, p in pres if p is not None]
        pick = [i for i, t in enumerate(toks) if t[2] is not None]
        pick += [s + j for j, p in enumerate(pres) if p[1] is not None]
        if set(rows) != pending or len(rows) != len(pending):  # pragma: no cover
            raise RuntimeError("cross-frame diagonal schedule out of sync")
        dest = [(g // h + 1) * n + (g % h) * w + sched.count[g] for g in rows]
        packed = index_tensor(
            src + [g // h for g, _, _, _ in toks] + [(g % h) * w + c for g, c, _, _ in toks]
            + pick + dest,
            device,
        )  # fmt: skip
        out, pre_out = feed(
            buf[:, packed[:s]], packed[s : 2 * s], packed[2 * s : 3 * s], [f for f, _ in pres]
        )  # [B, S, V], [B, P, V]
        if rows:
            both = torch.cat([out, pre_out], dim=1) if pres else out  # [B, S + P, V]
            r0 = 3 * s + len(rows)
            buf[:, packed[r0:]] = sample(both[:, packed[3 * s : r0]])  # [B, R]
        for g in rows:
            sched.count[g] += 1
        pending, toks, pres = sched.plan()
    return buf[:, n:].reshape(batch, num_frames, h, w)


class CrossFrameDecoder(DiagonalDecoder):
    """Diagonal decoding that, in ``rollout`` (every action known in advance), starts the next
    frame before the current one ends (``cross_frame_diagonal_decode``: the anti-diagonals run
    on across frame boundaries, ``window`` rows in flight in all).

    ``step`` (interactive play, the next action unknown) decodes within the frame, as
    ``DiagonalDecoder``; so with ``window > 1`` a rollout differs from ``reset`` + ``step``,
    with ``window=1`` it equals it token for token. Arguments as ``DiagonalDecoder``, without
    action guidance.
    """

    def __init__(self, window: int = 4, offset: int = 1, **kwargs) -> None:
        super().__init__(window, offset, **kwargs)
        if self.guidance_scale != 1.0:
            raise ValueError(
                "guidance_scale != 1 runs with step-by-step decoding: not with cross_frame or "
                "cuda_graphs"
            )

    def rollout(
        self,
        model: ARWorldModel,
        context_frames: Tensor,
        actions: Tensor,
        context_actions: Tensor | None = None,
    ) -> Rollout:
        """The frames between two window refreshes are generated together; the pipeline
        drains at every refresh (positions are renumbered there), and each frame is decoded to
        pixels once its tokens are complete."""
        check_world_model_inputs(model.action_spec, context_frames, actions, context_actions)
        state = model.reset(context_frames, context_actions)
        frames, rewards, dones = [], [], []
        t, total = 0, actions.shape[1]
        while t < total:
            self.refresh_window(model, state)
            room = model.max_frames - len(state.prefix_tokens) - len(state.tokens)
            chunk = actions[:, t : t + room]
            for frame, reward, done in self.decode_chunk(model, state, chunk):
                frames.append(frame)
                rewards.append(reward)
                dones.append(done)
            t += chunk.shape[1]
        return Rollout(
            frames=torch.stack(frames, dim=1),  # [B, T, C, H, W]
            rewards=torch.stack(rewards, dim=1),
            dones=torch.stack(dones, dim=1),
        )

    def decode_chunk(
        self, model: ARWorldModel, state: ARState, actions: Tensor
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Generate the frames after ``actions`` ``[B, F, ...]`` (all inside the current
        window) across frames; returns ``(frame, reward, done)`` per frame."""
        layout = model.layout
        b, num = actions.shape[:2]
        device = state.tokens[-1].device
        k1 = layout.k + 1
        first = len(state.prefix_tokens) + len(state.tokens)  # window index of frame 0
        starts = torch.tensor(
            [layout.step_start(first + f) for f in range(num)], dtype=torch.long, device=device
        )  # sequence position of each frame's first token
        encoder = model.action_encoder
        preludes = [
            encoder.slot_inputs(model.embed_ids, actions[:, f], b, device) for f in range(num)
        ]
        roles = layout.frame_roles(device)
        slots: list[Tensor | None] = [None] * num

        def feed(
            ids: Tensor, frame: Tensor, index: Tensor, pres: list[int]
        ) -> tuple[Tensor, Tensor]:
            s = ids.shape[1]
            xs = [model.embed_ids(ids + layout.future_offset, roles[index])]  # [B, S, D]
            pos = [starts[frame] + index]
            for f in pres:
                xs.append(preludes[f])  # [B, K + 1, D]
                pos.append(starts[f] - k1 + torch.arange(k1, device=device))
            h = model.run(state, torch.cat(xs, dim=1), torch.cat(pos))
            slot_h = h[:, s + k1 - 1 :: k1]  # [B, P, D]
            for j, f in enumerate(pres):
                slots[f] = slot_h[:, j]  # the last write saw the complete previous frame
            return model.frame_head(h[:, :s]), model.frame_head(slot_h)

        previous = state.tokens[-1]
        if previous.shape[-2:] != (layout.h, layout.w):  # a compressive context grid
            previous = None
        grids = cross_frame_diagonal_decode(
            feed, num, layout.h, layout.w, self.sampler, b, self.window, self.offset,
            placeholder=previous, device=device,
        )  # fmt: skip  # [B, F, h, w]
        state.pos = int(starts[-1]) + layout.n
        out = []
        for f in range(num):
            slot = slots[f]
            if slot is None:  # pragma: no cover - every prelude is fed
                raise RuntimeError(f"the slot of frame {f} was never fed")
            reward = model.reward_head(slot).squeeze(-1).float()
            done = (model.done_head(slot).squeeze(-1) > 0).float()
            out.append((model.finish_frame(state, grids[:, f], actions[:, f]), reward, done))
        return out
