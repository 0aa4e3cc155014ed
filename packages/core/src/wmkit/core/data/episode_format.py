"""The names, error and file primitives that :class:`~wmkit.core.data.episode_writer.EpisodeWriter`
and :class:`~wmkit.core.data.episode_store.EpisodeStore` share: the format's name and version,
its file names, :class:`CorruptDatasetError`, checked JSON access, checksums and atomic writes.
The layout itself is described in :mod:`wmkit.core.data.episode_store`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "SHARD_META",
    "STEPS",
    "CorruptDatasetError",
    "FrameFormat",
    "fsync_dir",
    "require_key",
    "sha256_of",
    "write_json_atomic",
]

FORMAT_NAME = "wmkit-episodes"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_META = "shard.json"
STEPS = "steps.parquet"
FrameFormat = Literal["video", "npz"]


class CorruptDatasetError(ValueError):
    """A dataset file is missing, truncated or unreadable; the message names the file."""


def require_key(data: Any, key: str, path: Path, where: str = "") -> Any:
    """``data[key]`` from the JSON file ``path``; a missing key (or a ``data`` that is not an
    object) is a :class:`CorruptDatasetError` naming the file and the key, ``where`` locating
    ``data`` inside the file (e.g. ``"episodes[2]."``)."""
    if not isinstance(data, dict):
        raise CorruptDatasetError(
            f"{path}: {where.rstrip('.') or 'the file'} must be a JSON object; "
            f"got {type(data).__name__}"
        )
    if key not in data:
        raise CorruptDatasetError(f"{path} has no {where}{key!r} key (damaged or hand-edited?)")
    return data[key]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
