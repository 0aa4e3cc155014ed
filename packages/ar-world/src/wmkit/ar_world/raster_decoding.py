"""Raster-order decoding of one frame's token grid, one token per forward pass, as a GPT
reads an image (iVideoGPT, Wu et al. 2024): ``raster_decode`` and its strategy
``RasterDecoder``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from wmkit.ar_world.token_decoder import TokenDecoder

if TYPE_CHECKING:
    from wmkit.ar_world.state import ARState
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = ["FeedFn", "RasterDecoder", "index_tensor", "raster_decode"]

FeedFn = Callable[[Tensor, Tensor], Tensor]
"""``feed(ids [B, S], grid_index [S]) -> logits [B, S, V]``: run the model on frame tokens at
flat grid indices (their sequence positions follow from the frame's start) and return, for
each, the logits of the token that follows it in raster order."""


def index_tensor(values: list[int], device: torch.device | str) -> Tensor:
    """``long`` tensor of ``values`` on ``device`` without stalling the host on CUDA (a plain
    ``torch.tensor(..., device="cuda")`` waits for every queued kernel: a pageable copy
    synchronises the stream, which would serialise the host and the GPU at every pass)."""
    cpu = torch.tensor(values, dtype=torch.long)
    if torch.device(device).type != "cuda":
        return cpu.to(device)
    return cpu.pin_memory().to(device, non_blocking=True)


def raster_decode(
    feed: FeedFn, first_logits: Tensor, height: int, width: int, sample: Callable[[Tensor], Tensor]
) -> Tensor:
    """Generate a ``height × width`` grid token by token in raster order.

    ``first_logits`` ``[B, V]`` predict token ``(0, 0)`` (the output at the slot before the
    frame). Every generated token is fed back, the last one too, so the cache ends up holding
    the whole frame. Returns ids ``long [B, height, width]``.
    """
    n = height * width
    b = first_logits.shape[0]
    out = torch.zeros(b, n, dtype=torch.long, device=first_logits.device)
    index = torch.arange(n, device=out.device)
    logits = first_logits
    for j in range(n):
        out[:, j] = sample(logits)
        nxt = feed(out[:, j : j + 1], index[j : j + 1])  # [B, 1, V]
        logits = nxt[:, 0]
    return out.reshape(b, height, width)


class RasterDecoder(TokenDecoder):
    """Decode each frame in raster order (``raster_decode``); arguments as ``TokenDecoder``."""

    def decode_grid(
        self, feed: FeedFn, first: Tensor, model: ARWorldModel, state: ARState
    ) -> Tensor:
        layout = model.layout
        return raster_decode(feed, first, layout.h, layout.w, self.sampler)
