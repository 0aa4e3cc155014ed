"""`ArrayEpisodes`: an in-memory ``EpisodeSource`` (episodes held as numpy arrays).

For tests, demos and small synthetic data (e.g. ``wmkit.core.testing.moving_squares``)
that should flow through the same code as recorded datasets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wmkit.core import ActionSpec, check_frames
from wmkit.core.data.source import StepData

__all__ = ["ArrayEpisodes"]


class ArrayEpisodes:
    """Episodes from arrays.

    Args:
        frames: ``uint8 [N, T, H, W, 3]`` or a list of ``[T_i, H, W, 3]``.
        actions: ``[N, T, *action_shape]`` or a list of ``[T_i, ...]``; ``None`` for
            action-free video.
        action_spec: the actions' spec (required with ``actions``).
        rewards: ``[N, T]`` or a list of ``[T_i]`` (default zeros).
        dones: ``[N, T]`` or a list of ``[T_i]`` (default: only the last step).
        fps: frames per second.
    """

    def __init__(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        actions: np.ndarray | Sequence[np.ndarray] | None = None,
        action_spec: ActionSpec | None = None,
        rewards: np.ndarray | Sequence[np.ndarray] | None = None,
        dones: np.ndarray | Sequence[np.ndarray] | None = None,
        fps: float = 15.0,
    ) -> None:
        self._frames = [np.asarray(f) for f in frames]
        for i, f in enumerate(self._frames):
            check_frames(f, f"frames[{i}]")
            if f.ndim != 4:
                raise ValueError(f"frames[{i}] must be uint8 [T, H, W, C]; got shape {f.shape}")
        if (actions is None) != (action_spec is None):
            raise ValueError("actions and action_spec must be given together (or neither)")
        n = len(self._frames)
        lengths = [len(f) for f in self._frames]
        self._actions = None if actions is None else [np.asarray(a) for a in actions]
        self._rewards = (
            [np.zeros(t, np.float32) for t in lengths]
            if rewards is None
            else [np.asarray(r, np.float32) for r in rewards]
        )
        if dones is None:
            self._dones = [np.arange(t) == t - 1 for t in lengths]
        else:
            self._dones = [np.asarray(d).astype(bool) for d in dones]
        for name, arrays in (
            ("actions", self._actions),
            ("rewards", self._rewards),
            ("dones", self._dones),
        ):
            if arrays is None:
                continue
            if len(arrays) != n or any(len(a) != t for a, t in zip(arrays, lengths)):
                raise ValueError(
                    f"{name} must have one entry per frame of each of the {n} episodes "
                    f"(lengths {lengths[:4]}...); got lengths {[len(a) for a in arrays][:4]}..."
                )
        self._spec = action_spec
        self._fps = float(fps)

    @property
    def action_spec(self) -> ActionSpec | None:
        return self._spec

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return len(self._frames)

    def episode_length(self, episode: int) -> int:
        if not 0 <= episode < len(self):
            raise IndexError(f"episode {episode} out of range: {len(self)} episodes")
        return len(self._frames[episode])

    def _check(self, episode: int, start: int, stop: int) -> None:
        n = self.episode_length(episode)
        if not 0 <= start < stop <= n:
            raise IndexError(f"window [{start}, {stop}) outside episode {episode} of length {n}")

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        self._check(episode, start, stop)
        return self._frames[episode][start:stop]

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        self._check(episode, start, stop)
        out: StepData = {
            "rewards": self._rewards[episode][start:stop],
            "dones": self._dones[episode][start:stop],
        }
        if self._actions is not None:
            dtype = np.float32 if self._spec.kind == "continuous" else np.int64  # type: ignore[union-attr]
            out["actions"] = self._actions[episode][start:stop].astype(dtype)
        return out
