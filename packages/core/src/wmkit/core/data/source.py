"""`EpisodeSource`: random access to recorded episodes, whatever their format on disk.

Every reader (wmkit's sharded episode store, LeRobot datasets, a folder of mp4s) gives the
same small interface, and ``ClipDataset`` samples clips from any of them without decoding
whole episodes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from wmkit.core.action_spec import ActionSpec

__all__ = ["EpisodeSource", "StepData"]

StepData = dict[str, np.ndarray]
"""Per-step arrays of an episode window: ``actions`` ``[T, *action_shape]`` (int64 for
discrete specs, float32 for continuous), ``rewards`` ``float32 [T]``, ``dones`` ``bool [T]``.
Keys are absent when the source has no such data (e.g. video without actions)."""


@runtime_checkable
class EpisodeSource(Protocol):
    """Random access to a collection of episodes.

    Attributes:
        action_spec: the actions' spec, or ``None`` for action-free video.
        fps: frames per second of the recording.
    """

    @property
    def action_spec(self) -> ActionSpec | None: ...

    @property
    def fps(self) -> float: ...

    def __len__(self) -> int:
        """Number of episodes."""
        ...

    def episode_length(self, episode: int) -> int:
        """Number of frames (= steps) of ``episode``."""
        ...

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of ``episode`` as ``uint8 [stop - start, H, W, 3]``,
        decoding no more of the episode than needed (seek to the nearest keyframe/chunk)."""
        ...

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        """Per-step data ``[start, stop)`` of ``episode`` (see ``StepData``)."""
        ...
