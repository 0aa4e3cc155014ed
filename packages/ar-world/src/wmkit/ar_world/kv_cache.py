"""Static KV cache with per-slot validity, shared by raster and diagonal decoding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["KVCache"]


@dataclass
class KVCache:
    """Pre-allocated keys/values for every layer, indexed by sequence position.

    Slot ``p`` holds the key/value of the token at position ``p`` of the current context
    window (as in MineWorld's static cache). ``valid[p]`` says whether slot ``p`` has been
    written: diagonal decoding writes positions out of order, and a query must not attend to
    a slot that holds nothing yet. MineWorld attends to such empty (zero) slots; we mask them,
    which makes window-1 diagonal decoding equal to raster decoding exactly.

    A *static* cache (``static=True``) keeps every shape fixed and never reads a device value
    on the host: attention always spans all ``L`` slots (empty ones masked), and ``mark``
    neither checks bounds nor tracks ``end``. That is what a captured CUDA graph needs
    (``wmkit.ar_world.cuda_graphs``); it gives the same outputs as the dynamic cache.

    Attributes:
        keys: per layer ``[B, H, L, Dh]``.
        values: per layer ``[B, H, L, Dh]``.
        valid: ``bool [L]`` (the same for every batch row: all rows follow one schedule).
        end: one past the highest written slot (attention only looks at ``[:end]``); a static
            cache keeps it at ``L``.
        static: fixed shapes, no host synchronisation (see above).
    """

    keys: list[Tensor]
    values: list[Tensor]
    valid: Tensor
    end: int = 0
    static: bool = False

    @classmethod
    def empty(
        cls,
        num_layers: int,
        batch: int,
        heads: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        static: bool = False,
    ) -> KVCache:
        shape = (batch, heads, max_len, head_dim)
        return cls(
            keys=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)],
            values=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)],
            valid=torch.zeros(max_len, dtype=torch.bool, device=device),
            end=max_len if static else 0,
            static=static,
        )

    @property
    def max_len(self) -> int:
        return self.valid.shape[0]

    def reset(self) -> None:
        """Forget everything (the tensors are kept and overwritten)."""
        self.valid.zero_()
        self.end = self.max_len if self.static else 0

    def mark(self, positions: Tensor) -> None:
        """Record that ``positions`` are about to be written (before the layers run)."""
        if self.static:  # no host sync (and no host tensor: CUDA-graph capturable)
            self.valid.index_fill_(0, positions, True)
            return
        if positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(
                f"position {int(positions.max())} is past the cache length {self.max_len}; "
                "refresh the context window first"
            )
        self.valid[positions] = True
        self.end = max(self.end, int(positions.max()) + 1) if positions.numel() else self.end

    def attention_mask(self, positions: Tensor) -> Tensor:
        """``bool [S, end]``: query at ``positions[i]`` sees written slots ``<= positions[i]``."""
        slots = torch.arange(self.end, device=positions.device)
        return self.valid[: self.end][None, :] & (slots[None, :] <= positions[:, None])

    def begin_pass(self, positions: Tensor, dtype: torch.dtype) -> Tensor:
        """``mark`` ``positions`` and return the pass's additive attention mask ``[S, end]``
        (``0`` or ``-inf``), built once per pass rather than per layer (SDPA would convert a
        boolean mask in every layer)."""
        self.mark(positions)
        return torch.zeros((), dtype=dtype, device=positions.device).masked_fill(
            ~self.attention_mask(positions), float("-inf")
        )

    def write(self, layer: int, positions: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``k, v`` ``[B, H, S, Dh]`` at ``positions``; return the layer's keys/values
        up to ``end``."""
        self.keys[layer][:, :, positions] = k
        self.values[layer][:, :, positions] = v
        return self.keys[layer][:, :, : self.end], self.values[layer][:, :, : self.end]
