"""CUDA-graph replay of a denoising network's inference calls (real-time rollouts on a GPU).

A rollout calls the network a few times per frame on inputs whose shapes repeat (the window
of frames, the batch doubled for guidance). At batch 1 a DiT-base pass over a 16-frame window
launches ~600 small kernels, and launching them from Python can take longer than running them
(the README's CUDA-graphs section has the measurement). :class:`GraphedNetwork`
captures the call once per input signature (shapes, dtypes, autocast state) and replays it
as one launch. Calls with gradients enabled (training) and off CUDA run eagerly.

Capture follows PyTorch's rules: a warm-up call on a side stream, then the capture into a
memory pool shared by all of the network's graphs; under autocast the capture runs with the
autocast weight cache disabled, so every replay casts the weights it reads (the cache would
otherwise hold tensors the graph no longer owns). The network must not synchronise with the
host inside ``forward`` (the native DiT does not; diffusers' UNets are not graphed here).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GraphedNetwork"]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[Tensor, ...]
    out: Tensor


class GraphedNetwork:
    """Call ``fn(*tensors) -> Tensor`` through per-signature CUDA graphs.

    Args:
        fn: a pure function of its tensor arguments (the network's forward).
        max_graphs: most signatures kept; further ones run eagerly.
    """

    def __init__(self, fn: Callable[..., Tensor], max_graphs: int = 32) -> None:
        self.fn, self.max_graphs = fn, max_graphs
        self._graphs: dict[tuple, _Graph] = {}
        self._pool = None

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def __call__(self, *args: Tensor) -> Tensor:
        if torch.is_grad_enabled() or not all(a.is_cuda for a in args):
            return self.fn(*args)
        autocast = torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda") if autocast else None
        key = (autocast, dtype, tuple((tuple(a.shape), a.dtype) for a in args))
        g = self._graphs.get(key)
        if g is None:
            if len(self._graphs) >= self.max_graphs:
                return self.fn(*args)
            return self._capture(key, args, dtype)
        for static, a in zip(g.inputs, args, strict=True):
            static.copy_(a)
        g.graph.replay()
        return g.out.clone()  # the next replay overwrites g.out

    def _capture(self, key: tuple, args: tuple[Tensor, ...], dtype: torch.dtype | None) -> Tensor:
        def cast() -> torch.autocast | nullcontext:
            if dtype is None:
                return nullcontext()
            return torch.autocast("cuda", dtype=dtype, cache_enabled=False)

        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        inputs = tuple(a.clone() for a in args)
        side = torch.cuda.Stream(device=args[0].device)
        side.wait_stream(torch.cuda.current_stream(args[0].device))
        with torch.cuda.stream(side), cast():  # warm-up, eagerly: its result is the answer
            out = self.fn(*inputs)
        torch.cuda.current_stream(args[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool), cast():
            static_out = self.fn(*inputs)
        self._graphs[key] = _Graph(graph, inputs, static_out)
        return out
