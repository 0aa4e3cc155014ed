"""CUDA-graph replay of the transformer's cached decoding passes (batch-1 real-time play).

At batch 1 a decoding pass reads the weights and the KV cache and does almost no arithmetic,
so on a GPU its time goes to launching hundreds of operations one by one from Python rather
than to the work itself (the figures are on the package's benchmark page).
:class:`GraphedDecoder` captures ``Transformer.forward(x, positions, cache)`` once per token
count ``S`` (1 for raster decoding; 1 … ``window`` for diagonal decoding; more across frames)
into a CUDA graph over a *static* :class:`~wmkit.ar_world.kv_cache.KVCache`, and replays
it: one launch per pass. The gpt-fast recipe (static cache, fixed shapes), done with
``torch.cuda.CUDAGraph`` directly rather than ``torch.compile(mode="reduce-overhead")``, so
there is no compile step and no recompilation per token count.

A graph is captured on the first pass of its size: the pass runs eagerly (on a side stream,
the warm-up PyTorch requires), is captured, and its result is returned; writing the same keys
and values twice is idempotent, so the capture changes nothing. Passes longer than
``max_tokens`` (the prefill) run eagerly on the same static cache. Off CUDA the same static
path runs eagerly, which is how the CPU tests check it against the dynamic cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.transformer import Transformer

__all__ = ["GraphedDecoder"]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: Tensor
    positions: Tensor
    out: Tensor


class GraphedDecoder:
    """Run ``transformer(x, positions, cache)`` on a static ``cache``, replaying one CUDA graph
    per token count.

    Args:
        transformer: the model's transformer (eval mode, inference only).
        cache: a static cache (``KVCache(static=True)``) the graphs read and write; it must
            stay the same object (``reset`` it, never replace it).
        max_tokens: passes of at most this many tokens are graphed; longer ones run eagerly.
    """

    def __init__(self, transformer: Transformer, cache: KVCache, max_tokens: int = 64) -> None:
        if not cache.static:
            raise ValueError("GraphedDecoder needs a static KV cache (KVCache(static=True))")
        self.transformer, self.cache, self.max_tokens = transformer, cache, max_tokens
        self.use_graphs = cache.valid.is_cuda
        self._graphs: dict[int, _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    @property
    def captured(self) -> list[int]:
        """Token counts with a captured graph."""
        return sorted(self._graphs)

    def __call__(self, x: Tensor, positions: Tensor) -> Tensor:
        """Hidden states ``[B, S, D]`` of ``x`` ``[B, S, D]`` at ``positions`` ``[S]``."""
        s = x.shape[1]
        if not self.use_graphs or s > self.max_tokens or torch.is_grad_enabled():
            return self.transformer(x, positions, self.cache)
        g = self._graphs.get(s)
        if g is None:
            return self._capture(x, positions)
        g.x.copy_(x)
        g.positions.copy_(positions)
        g.graph.replay()
        return g.out.clone()  # the next replay overwrites g.out

    def _capture(self, x: Tensor, positions: Tensor) -> Tensor:
        static_x, static_pos = x.clone(), positions.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm-up: the real pass, run eagerly
            out = self.transformer(static_x, static_pos, self.cache)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self.transformer(static_x, static_pos, self.cache)
        self._graphs[x.shape[1]] = _Graph(graph, static_x, static_pos, static_out)
        return out
