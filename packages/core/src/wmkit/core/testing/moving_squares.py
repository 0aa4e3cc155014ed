"""A tiny deterministic environment for tests: a coloured square moved by the actions.

Frames are ``uint8 [T, H, W, 3]`` on a dark background; the square moves ``step`` pixels per
action (discrete: stay/up/down/left/right; continuous: ``(dy, dx)`` in [-1, 1] scaled by
``step``) and stops at the border. The reward is 1 when the square touches the top-left
quadrant. Actions visibly change the frames, so world models trained on it must beat
copy-last-frame and show controllability, in seconds on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec

__all__ = ["MOVES", "MovingSquaresEpisodes", "moving_squares"]

MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # stay, up, down, left, right


@dataclass
class MovingSquaresEpisodes:
    """``frames uint8 [N, T, H, W, 3]``, ``actions [N, T, ...]``, ``rewards``/``dones``
    ``float32 [N, T]`` and the ``action_spec``."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    action_spec: ActionSpec

    def save(self, root: str | os.PathLike, **writer_kwargs: Any) -> Path:
        """Write the episodes as a wmkit dataset at ``root`` (``EpisodeWriter``; ``fps`` 10
        and ``env`` ``"squares"`` unless ``writer_kwargs`` say otherwise); returns ``root``."""
        from wmkit.core.data.episode_store import EpisodeWriter

        options = {"fps": 10, "env": "squares", **writer_kwargs}
        with EpisodeWriter(root, action_spec=self.action_spec, **options) as writer:
            for i in range(len(self.frames)):
                writer.add_episode(self.frames[i], self.actions[i], self.rewards[i], self.dones[i])
        return Path(root)


def moving_squares(
    num_episodes: int = 8,
    length: int = 16,
    size: int = 16,
    *,
    continuous: bool = False,
    step: int | None = None,
    sticky: float = 0.7,
    seed: int = 0,
) -> MovingSquaresEpisodes:
    """Generate episodes with sticky random actions (repeat the last one with prob ``sticky``)."""
    if size < 8:
        raise ValueError(f"size must be >= 8; got {size}")
    rng = np.random.default_rng(seed)
    side = max(2, size // 4)
    step = step or max(1, size // 8)
    spec = (
        ActionSpec.continuous(2, -1.0, 1.0, names=("dy", "dx"))
        if continuous
        else ActionSpec.discrete(5, names=("stay", "up", "down", "left", "right"))
    )
    frames = np.zeros((num_episodes, length, size, size, 3), np.uint8)
    acts = (
        np.zeros((num_episodes, length, 2), np.float32)
        if continuous
        else np.zeros((num_episodes, length), np.int64)
    )
    rewards = np.zeros((num_episodes, length), np.float32)
    dones = np.zeros((num_episodes, length), np.float32)
    for n in range(num_episodes):
        colour = rng.integers(96, 256, size=3, dtype=np.uint8)
        pos = rng.integers(0, size - side + 1, size=2).astype(np.float64)
        last = rng.integers(0, 5) if not continuous else rng.uniform(-1, 1, 2)
        for t in range(length):
            y, x = np.round(pos).astype(int)
            frames[n, t] = 16
            frames[n, t, y : y + side, x : x + side] = colour
            if rng.random() >= sticky:
                last = rng.integers(0, 5) if not continuous else rng.uniform(-1, 1, 2)
            acts[n, t] = last
            delta = MOVES[int(last)] if not continuous else np.asarray(last)
            pos = np.clip(pos + delta * step, 0, size - side)
            rewards[n, t] = float(pos[0] < size / 2 and pos[1] < size / 2)
        dones[n, -1] = 1.0
    return MovingSquaresEpisodes(frames, acts, rewards, dones, spec)
