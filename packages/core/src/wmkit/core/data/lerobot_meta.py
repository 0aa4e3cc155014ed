"""A local LeRobot dataset's metadata, read for ``LeRobotSource``: ``meta/info.json``, the
episode list (v2.x ``meta/episodes.jsonl``, v3.0 ``meta/episodes/*/*.parquet``), the action
column's extremes in ``meta/stats.json`` and the ``ActionSpec`` a column's feature describes.
The file layouts are described in ``wmkit.core.data.lerobot``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wmkit.core.action_spec import ActionSpec

__all__ = [
    "LeRobotEpisode",
    "frame_hw",
    "infer_action_spec",
    "read_episodes",
    "read_info",
    "read_json",
    "stats_extremes",
    "to_numpy",
]

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")


@dataclass(frozen=True)
class LeRobotEpisode:
    """Where one episode's rows and frames are."""

    index: int  # LeRobot's episode_index
    length: int
    data_path: Path
    video_path: Path
    video_offset: int  # first frame of this episode in its (shared, v3.0) mp4


def read_json(path: Path) -> Any:
    """``path`` parsed as JSON; a ValueError naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A (possibly nested list) arrow column → ``[rows, *inner]`` numpy array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    rows = len(arr)
    while (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or (pa.types.is_fixed_size_list(arr.type))
    ):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    return values.reshape(rows, -1) if rows else values.reshape(0, 0)


def read_info(root: Path) -> dict[str, Any]:
    """``root/meta/info.json``, checked for a supported ``codebase_version`` and the entries
    the reader needs (``fps``, ``features``, ``data_path``, ``video_path``)."""
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"no LeRobot dataset at {root}: {info_path} is missing")
    info = read_json(info_path)
    version = str(info.get("codebase_version", ""))
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"unsupported LeRobot codebase_version {version!r} in {info_path}; "
            f"supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    for key in ("fps", "features", "data_path", "video_path"):
        if key not in info:
            raise ValueError(f"{info_path} has no {key!r} entry")
    return info


def read_episodes(root: Path, info: dict[str, Any], camera_key: str) -> list[LeRobotEpisode]:
    """The episodes of the dataset at ``root`` in order of ``episode_index``, with the data
    file and ``camera_key``'s mp4 of each."""
    version = str(info["codebase_version"])
    if version.startswith("v2."):
        return _read_episodes_v2(root, info, camera_key)
    return _read_episodes_v3(root, info, camera_key)


def _read_episodes_v2(root: Path, info: dict[str, Any], camera_key: str) -> list[LeRobotEpisode]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"LeRobot {info['codebase_version']} episode list {path} is missing"
        )
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {n} is not valid JSON: {e}") from e
    chunks = int(info.get("chunks_size", 1000))
    episodes = []
    for row in sorted(rows, key=lambda r: int(r["episode_index"])):
        idx = int(row["episode_index"])
        names = {"episode_chunk": idx // chunks, "episode_index": idx}
        episodes.append(
            LeRobotEpisode(
                index=idx,
                length=int(row["length"]),
                data_path=root / info["data_path"].format(**names),
                video_path=root / info["video_path"].format(video_key=camera_key, **names),
                video_offset=0,
            )
        )
    return episodes


def _read_episodes_v3(root: Path, info: dict[str, Any], camera_key: str) -> list[LeRobotEpisode]:
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"LeRobot v3.0 episode metadata is missing: no parquet files under "
            f"{root / 'meta' / 'episodes'}"
        )
    fps = float(info["fps"])
    video = f"videos/{camera_key}/"
    columns = [
        "episode_index",
        "length",
        "data/chunk_index",
        "data/file_index",
        video + "chunk_index",
        video + "file_index",
        video + "from_timestamp",
    ]
    episodes = []
    for path in files:
        names = set(pq.read_schema(path).names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"LeRobot episode metadata {path} lacks columns {missing}")
        table = pq.read_table(path, columns=columns).to_pydict()
        for i in range(len(table["episode_index"])):
            data = info["data_path"].format(
                chunk_index=int(table["data/chunk_index"][i]),
                file_index=int(table["data/file_index"][i]),
            )
            mp4 = info["video_path"].format(
                video_key=camera_key,
                chunk_index=int(table[video + "chunk_index"][i]),
                file_index=int(table[video + "file_index"][i]),
            )
            episodes.append(
                LeRobotEpisode(
                    index=int(table["episode_index"][i]),
                    length=int(table["length"][i]),
                    data_path=root / data,
                    video_path=root / mp4,
                    video_offset=round(float(table[video + "from_timestamp"][i]) * fps),
                )
            )
    return sorted(episodes, key=lambda e: e.index)


def stats_extremes(root: Path, key: str, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-component min and max of column ``key`` from ``meta/stats.json``, or ``None``
    when the file is absent or lacks them at ``size`` components."""
    stats_path = root / "meta" / "stats.json"
    if stats_path.is_file():
        stats = read_json(stats_path).get(key, {})
        if "min" in stats and "max" in stats:
            low = np.asarray(stats["min"], np.float64).reshape(-1)
            high = np.asarray(stats["max"], np.float64).reshape(-1)
            if low.size == size and high.size == size:
                return low, high
    return None


def infer_action_spec(
    feature: dict[str, Any], shape: tuple[int, ...], low: np.ndarray, high: np.ndarray
) -> ActionSpec:
    """The action spec a column's ``feature`` (of ``shape``, observed over ``[low, high]``)
    describes.

    An integer column (``int*``/``uint*`` dtype) of non-negative values holds choices: of
    shape ``[1]`` or ``[]`` it is ``discrete`` with ``n`` = max + 1 (names from the
    feature's ``names`` when they are ``n`` strings, one per choice), wider it is
    ``multi_discrete`` with ``nvec`` = max + 1 per component. Anything else is
    ``continuous`` over the observed box (a component whose min equals its max gets
    ``[v - 0.5, v + 0.5]`` so the box is never empty), named by ``names`` when they are
    one string per component.
    """
    size = math.prod(shape)
    names = feature.get("names")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        names = None
    dtype = str(feature.get("dtype", ""))
    if dtype.startswith(("int", "uint")) and low.min() >= 0:
        counts = [int(h) + 1 for h in high]
        if size == 1:
            n = counts[0]
            return ActionSpec.discrete(n, names if names and len(names) == n else None)
        return ActionSpec.multi_discrete(counts, names if names and len(names) == size else None)
    flat = high <= low
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    return ActionSpec.continuous(
        shape,
        low=low.tolist(),
        high=high.tolist(),
        names=names if names and len(names) == size else None,
    )


def frame_hw(shape: Any) -> tuple[int, int]:
    """(H, W) of a LeRobot video feature shape, which is ``[H, W, C]`` or ``[C, H, W]``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3 and shape[0] in (1, 3) and shape[-1] not in (1, 3):
        return shape[1], shape[2]
    return shape[0], shape[1]
