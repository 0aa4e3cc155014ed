"""Tiny recorded episodes with 4-d continuous actions in [-1, 1] at 64×64 (the released
iVideoGPT models' frame size and Meta-World's action size), where the action decides the next
frame: frame ``t + 1`` is a solid colour read from action ``t``'s first three values, so a
model that uses its actions can beat copying the last frame and one that ignores them cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wmkit.core import ActionSpec
from wmkit.core.data.episode_store import EpisodeWriter

SPEC = ActionSpec.continuous(4, -1.0, 1.0)


def colour(action: np.ndarray, size: int) -> np.ndarray:
    """The uint8 ``[size, size, 3]`` frame that follows ``action`` ``[4]``."""
    rgb = np.round((action[:3] + 1) * 127.5).astype(np.uint8)
    return np.broadcast_to(rgb, (size, size, 3)).copy()


def write_colour_episodes(
    root: Path, episodes: int = 12, length: int = 8, size: int = 64, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    with EpisodeWriter(root, action_spec=SPEC, fps=10, env="colours", frame_format="npz") as w:
        for _ in range(episodes):
            actions = rng.choice([-1.0, 1.0], size=(length, 4)).astype(np.float32)
            first = colour(rng.choice([-1.0, 1.0], size=4), size)
            frames = [first] + [colour(a, size) for a in actions[:-1]]
            w.add_episode(np.stack(frames), actions, np.zeros(length, np.float32))
    return root
