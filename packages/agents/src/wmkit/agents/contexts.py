"""Where imagined episodes start: real context clips (DIAMOND's burn-in, MBPO's branch points).

A world model cannot invent its first frame; every imagined episode starts from ``T0`` real
frames (and the ``T0 - 1`` actions between them, for models that use them). A
:class:`ContextSource` hands out such clips; :class:`ClipContexts` keeps them in memory, built
from tensors, from a dataset's ``DataLoader`` (batches with ``frames``/``actions`` keys) or
from :class:`~wmkit.agents.replay.EpisodeReplay` (the real transitions MBPO collects).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from wmkit.core import Batch, check_video

__all__ = ["ClipContexts", "ContextSource"]


@runtime_checkable
class ContextSource(Protocol):
    """Samples start clips for imagined episodes.

    ``sample(n, rng)`` returns ``(frames float [n, T0, C, H, W] in [-1, 1], actions
    [n, T0 - 1, ...] or None)``; ``frame_shape`` is ``(C, H, W)``; ``context_length`` is
    ``T0``. All randomness comes from ``rng``, so an env seeded with ``reset(seed=s)`` starts
    from the same clips every time.
    """

    @property
    def frame_shape(self) -> tuple[int, int, int]: ...

    @property
    def context_length(self) -> int: ...

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Tensor, Tensor | None]: ...


class ClipContexts:
    """Context clips held in memory.

    Args:
        frames: ``float [N, T, C, H, W]`` in [-1, 1] (``T >= context_length``).
        actions: ``[N, T, ...]`` or ``[N, T - 1, ...]`` actions aligned with ``frames``
            (action ``t`` follows frame ``t``), or ``None`` for action-free contexts.
        context_length: ``T0``, frames per context; windows of ``T0`` consecutive frames are
            drawn uniformly from every clip. Defaults to ``T`` (whole clips).
    """

    def __init__(
        self, frames: Tensor, actions: Tensor | None = None, context_length: int | None = None
    ) -> None:
        check_video(frames, "frames")
        n, t = frames.shape[:2]
        t0 = t if context_length is None else int(context_length)
        if not 1 <= t0 <= t:
            raise ValueError(f"context_length must be in [1, {t}] (clip length); got {t0}")
        if actions is not None and (actions.shape[0] != n or actions.shape[1] not in (t, t - 1)):
            raise ValueError(
                f"actions must be [N={n}, T={t} or T-1={t - 1}, ...] to match frames; got "
                f"shape {tuple(actions.shape)}"
            )
        self.frames = frames.detach()
        self.actions = None if actions is None else actions.detach()
        self._t0 = t0

    @classmethod
    def from_batches(
        cls,
        batches: Iterable[dict[str, Tensor]],
        context_length: int = 1,
        max_batches: int | None = None,
        use_actions: bool = True,
    ) -> ClipContexts:
        """Collect clips from batches with ``frames [B, T, C, H, W]`` (and ``actions``), e.g.
        a ``wmkit.core.data.EpisodeDataModule`` or ``MovingSquaresDataModule`` loader."""
        frames, actions = [], []
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = Batch.coerce(batch, require=("frames",))
            frames.append(batch.frames)
            if use_actions and batch.actions is not None:
                actions.append(batch.actions)
        if not frames:
            raise ValueError("batches is empty: no context clips to collect")
        acts = torch.cat(actions) if use_actions and len(actions) == len(frames) else None
        return cls(torch.cat(frames), acts, context_length)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[2:])  # type: ignore[return-value]

    @property
    def context_length(self) -> int:
        return self._t0

    def __len__(self) -> int:
        return self.frames.shape[0]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Tensor, Tensor | None]:
        clips = torch.as_tensor(rng.integers(0, len(self), size=n))
        starts = torch.as_tensor(rng.integers(0, self.frames.shape[1] - self._t0 + 1, size=n))
        idx = starts[:, None] + torch.arange(self._t0)  # [n, T0]
        frames = self.frames[clips[:, None], idx]  # [n, T0, C, H, W]
        if self.actions is None or self._t0 == 1:
            return frames, None
        return frames, self.actions[clips[:, None], idx[:, :-1]]  # [n, T0 - 1, ...]
