"""Open any supported dataset directory as an `EpisodeSource`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from wmkit.core.data.source import EpisodeSource

__all__ = ["SourceKind", "detect_kind", "open_source"]

SourceKind = Literal["auto", "wmkit", "lerobot", "video_folder"]


def detect_kind(path: str | os.PathLike) -> SourceKind:
    """``wmkit`` where ``path`` holds a ``manifest.json``, ``lerobot`` where it holds
    ``meta/info.json``, else ``video_folder``."""
    root = Path(path)
    if (root / "manifest.json").is_file():
        return "wmkit"
    if (root / "meta" / "info.json").is_file():
        return "lerobot"
    return "video_folder"


def open_source(path: str | os.PathLike, kind: SourceKind = "auto", **kwargs: Any) -> EpisodeSource:
    """Open ``path`` as a wmkit episode dataset (``manifest.json``), a LeRobot dataset
    (``meta/info.json``) or a folder of videos; ``kind="auto"`` decides from the files.

    ``kwargs`` go to the reader (e.g. ``camera_key`` for LeRobot, ``resolution``).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no dataset at {root}")
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "wmkit":
        from wmkit.core.data.episode_store import EpisodeStore

        if kwargs:
            raise TypeError(f"wmkit episode datasets take no reader options; got {sorted(kwargs)}")
        return EpisodeStore(root)
    if kind == "lerobot":
        from wmkit.core.data.lerobot import LeRobotSource

        return LeRobotSource(root, **kwargs)
    if kind == "video_folder":
        from wmkit.core.data.video_folder import VideoFolderSource

        return VideoFolderSource(root, **kwargs)
    raise ValueError(f"kind must be auto, wmkit, lerobot or video_folder; got {kind!r}")
