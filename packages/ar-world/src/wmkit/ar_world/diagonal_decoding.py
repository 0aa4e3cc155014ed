"""Diagonal decoding (MineWorld, Guo et al. 2025, §3.3): rows of a frame's token grid are
decoded concurrently, each row running a few tokens behind the row above, so the tokens on an
anti-diagonal are generated in one forward pass.

The schedule, per forward pass ("tick"): every active row feeds its newest token and gets
the logits of its next one. Row ``r`` starts once row ``r - 1`` has ``offset`` tokens and
fewer than ``window`` rows are active. In raster order the first token of row ``r`` is
predicted from the output at the last token of row ``r - 1``, which does not exist yet; as
MineWorld does, a placeholder is fed at that position (the previous frame's token at the
same place, else the newest token of row ``r - 1``) and overwritten with the real token once
row ``r - 1`` ends.

Where we differ from MineWorld's ``img_diagd_decode_n_tokens``: (1) ``window`` bounds the
number of rows in flight and ``offset`` is the lag between rows (MineWorld's ``windowsize``
is the lag, with unbounded rows); so ``window=1`` is exactly raster decoding, token for token,
and ``window >= height, offset=1`` is pure anti-diagonal decoding; (2) slots not yet written
are masked out of attention (``KVCache.valid``) instead of being attended as zeros; (3) a
finished row's last token is fed once more so the cache holds the real token, not the
placeholder, before the next frame. Within a frame only: the next frame does not start before
this one ends (the next action is unknown in interactive play); ``cross_frame_decoding`` runs
the same schedule across frames when all actions are known (``rollout``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from wmkit.ar_world.raster_decoding import FeedFn, index_tensor
from wmkit.ar_world.token_decoder import TokenDecoder

if TYPE_CHECKING:
    from wmkit.ar_world.state import ARState
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = ["DiagonalDecoder", "diagonal_decode"]


def _plan(
    count: list[int],
    started: list[bool],
    fed_last: list[bool],
    height: int,
    width: int,
    window: int,
    offset: int,
) -> tuple[set[int], list[tuple[int, int, int | None, bool]]]:
    """Feeds for one tick: ``(row, col, row_predicted_or_None, placeholder)``; updates state."""
    feeds: list[tuple[int, int, int | None, bool]] = []
    pending: set[int] = set()
    for r in range(height):
        if not started[r] or fed_last[r] or count[r] == 0:
            continue
        c = count[r] - 1
        if count[r] < width:
            feeds.append((r, c, r, False))
            pending.add(r)
        else:
            fed_last[r] = True
            nxt = r + 1 if r + 1 < height and not started[r + 1] else None
            if nxt is not None:
                started[nxt] = True
                pending.add(nxt)
            feeds.append((r, c, nxt, False))
    active = sum(1 for r in range(height) if started[r] and count[r] < width)
    for r in range(1, height):
        if started[r] or not started[r - 1] or count[r - 1] < offset or active >= window:
            continue
        started[r] = True
        active += 1
        pending.add(r)
        feeds.append((r - 1, width - 1, r, True))
    feeds.sort(key=lambda f: (f[0], f[1]))
    return pending, feeds


def diagonal_decode(
    feed: FeedFn,
    first_logits: Tensor,
    height: int,
    width: int,
    sample: Callable[[Tensor], Tensor],
    window: int = 4,
    offset: int = 1,
    placeholder: Tensor | None = None,
) -> Tensor:
    """Generate a ``height × width`` token grid along anti-diagonals.

    Each tick costs a fixed handful of device operations however many rows are in flight: the
    ids fed are gathered from one buffer (``[placeholder grid | generated grid]``) with one
    index, the logits of every row predicted are sampled in one ``sample`` call and written
    back with one scatter, and the tick's index lists reach the device in one copy: at batch 1
    on a GPU, launches per row would cost more than the forward pass itself.

    Args:
        feed: runs the model on frame tokens at grid indices (see ``FeedFn``); must use a KV
            cache, since tokens arrive out of order.
        first_logits: ``[B, V]`` logits of token ``(0, 0)``.
        height: rows of the grid.
        width: columns of the grid.
        sample: logits ``[B, R, V]`` → ids ``[B, R]`` (e.g. a ``Sampler``).
        window: most rows decoded at once (``1`` = raster order).
        offset: tokens row ``r - 1`` must have before row ``r`` starts (``>= 1``).
        placeholder: ``long [B, height, width]``, the previous frame's tokens, fed in place of
            a row's last token before it exists (default: the newest token of that row).

    Returns:
        ids ``long [B, height, width]``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    if offset < 1:
        raise ValueError(f"offset must be >= 1; got {offset}")
    b, device = first_logits.shape[0], first_logits.device
    n = height * width
    buf = torch.zeros(b, 2 * n, dtype=torch.long, device=device)  # [placeholder | grid]
    if placeholder is not None:
        buf[:, :n] = placeholder.reshape(b, n)
    count = [0] * height
    started = [False] * height
    fed_last = [False] * height
    started[0] = True
    rows = [0]  # rows whose next token ``logits`` predict, in order
    logits = first_logits[:, None]  # [B, R, V]
    while rows:
        dest = index_tensor([n + r * width + count[r] for r in rows], device)
        buf[:, dest] = sample(logits)  # [B, R]
        for r in rows:
            count[r] += 1
        pending, feeds = _plan(count, started, fed_last, height, width, window, offset)
        if not feeds:
            break
        src = []
        for r, c, _, is_placeholder in feeds:
            if not is_placeholder:
                src.append(n + r * width + c)
            elif placeholder is not None:
                src.append(r * width + c)
            else:
                src.append(n + r * width + count[r] - 1)
        pick = [i for i, f in enumerate(feeds) if f[2] is not None]
        rows = [feeds[i][2] for i in pick]
        if set(rows) != pending:  # pragma: no cover - internal consistency
            raise RuntimeError("diagonal schedule out of sync")
        s = len(feeds)
        packed = index_tensor(src + [r * width + c for r, c, _, _ in feeds] + pick, device)
        out = feed(buf[:, packed[:s]], packed[s : 2 * s])  # [B, S, V]
        logits = out[:, packed[2 * s :]]  # [B, R, V]
    return buf[:, n:].reshape(b, height, width)


class DiagonalDecoder(TokenDecoder):
    """Decode each frame along anti-diagonals (``diagonal_decode``), within the frame.

    Args:
        window: most rows decoded at once (``1``: raster order, token for token).
        offset: lag in tokens between a row and the row above.
        **kwargs: as ``TokenDecoder`` (``use_cache`` must stay ``True``: tokens arrive out of
            order).
    """

    def __init__(self, window: int = 4, offset: int = 1, **kwargs) -> None:
        if not kwargs.get("use_cache", True):
            raise ValueError(
                "decoding='diagonal' needs use_cache=True (tokens arrive out of order)"
            )
        if window < 1 or offset < 1:
            raise ValueError(f"window and offset must be >= 1; got {window}, {offset}")
        super().__init__(**kwargs)
        self.window, self.offset = window, offset

    def decode_grid(
        self, feed: FeedFn, first: Tensor, model: ARWorldModel, state: ARState
    ) -> Tensor:
        layout = model.layout
        previous = state.tokens[-1]
        if previous.shape[-2:] != (layout.h, layout.w):  # a compressive context grid
            previous = None
        return diagonal_decode(
            feed, first, layout.h, layout.w, self.sampler, self.window, self.offset,
            placeholder=previous,
        )  # fmt: skip
