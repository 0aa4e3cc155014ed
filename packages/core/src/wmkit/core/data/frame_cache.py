"""``FrameCache``: decoded episodes kept in memory, least recently used first out, under a
byte budget.

Random clips from video files decode from the keyframe before each clip: with lossy video
and long keyframe intervals most of that work is thrown away, and the next clip from the
same episode does it again. Readers that decode an episode's frames once and keep them here
serve later clips of that episode by slicing. The cache lives in one process: pickling it (a
``DataLoader`` starting its workers) gives an empty one, so each worker fills its own and the
budget holds per process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = ["FrameCache"]


class FrameCache:
    """Arrays by key, evicting the least recently used beyond ``max_bytes``.

    Args:
        max_bytes: budget of the arrays held; ``0`` disables the cache (``fits`` is always
            false).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0; got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.nbytes = 0

    def fits(self, nbytes: int) -> bool:
        """Whether an array of ``nbytes`` may be cached (at most half the budget, so one
        large episode does not push every other one out)."""
        return 0 < nbytes <= self.max_bytes // 2

    def get(self, key: Hashable) -> np.ndarray | None:
        frames = self._items.get(key)
        if frames is not None:
            self._items.move_to_end(key)
        return frames

    def put(self, key: Hashable, frames: np.ndarray) -> None:
        if key in self._items:
            self.nbytes -= self._items.pop(key).nbytes
        self._items[key] = frames
        self.nbytes += frames.nbytes
        while self.nbytes > self.max_bytes and self._items:
            self.nbytes -= self._items.popitem(last=False)[1].nbytes

    def __len__(self) -> int:
        return len(self._items)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]
