"""``write_lerobot_dataset``: a small LeRobot dataset (v2.1 or v3.0) on disk, for tests and
benchmarks that must read LeRobot files without downloading any.

It writes what ``LeRobotSource`` and LeRobot's own loader read: ``meta/info.json``, the
episode list (``meta/episodes.jsonl`` for v2.1, ``meta/episodes/chunk-000/file-000.parquet``
for v3.0), ``meta/stats.json`` with the action column's min/max, one parquet of per-step
columns and one mp4 per episode (v2.1) or one of each for all episodes (v3.0).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wmkit.core.video_io import write_video

__all__ = ["write_lerobot_dataset"]

CAMERA = "observation.images.top"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _list_column(values: np.ndarray) -> pa.Array:
    """``[N, k]`` → a fixed-size list column, as LeRobot stores vector features."""
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _features(first: dict[str, np.ndarray], action_names: Sequence[str] | None) -> dict:
    """``info.json``'s ``features``: the camera, the action column (``int64`` for integer
    actions, else ``float32``) and LeRobot's per-step bookkeeping columns."""
    h, w = first["frames"].shape[1:3]
    actions0 = np.asarray(first["actions"])
    width = int(np.prod(actions0.shape[1:])) if actions0.ndim > 1 else 1
    integer = np.issubdtype(actions0.dtype, np.integer)
    return {
        CAMERA: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
        "action": {
            "dtype": "int64" if integer else "float32",
            "shape": [width],
            "names": list(action_names) if action_names is not None else None,
        },
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _step_table(
    episodes: Sequence[dict[str, np.ndarray]], indices: list[int], fps: float, integer: bool
) -> pa.Table:
    """The per-step columns of ``episodes[indices]``, in order, as one parquet table."""
    lengths = [len(e["frames"]) for e in episodes]
    starts = np.cumsum([0, *lengths])
    acts = np.concatenate([np.asarray(episodes[i]["actions"]).reshape(lengths[i], -1)
                           for i in indices])  # fmt: skip
    rewards = [episodes[i].get("rewards") for i in indices]
    n = len(acts)
    return pa.table({
        "action": _list_column(acts.astype(np.int64 if integer else np.float32)),
        "next.reward": np.concatenate([
            np.zeros(lengths[i], np.float32) if r is None else np.asarray(r, np.float32)
            for i, r in zip(indices, rewards)
        ]),
        "timestamp": np.concatenate([np.arange(lengths[i], dtype=np.float32) / fps
                                     for i in indices]),
        "frame_index": np.concatenate([np.arange(lengths[i]) for i in indices]),
        "episode_index": np.concatenate([np.full(lengths[i], i) for i in indices]),
        "index": np.arange(starts[indices[0]], starts[indices[0]] + n),
        "task_index": np.zeros(n, np.int64),
    })  # fmt: skip


def _write_v21(
    root: Path, episodes: Sequence[dict[str, np.ndarray]], info: dict, video: dict
) -> None:
    """v2.1: ``meta/episodes.jsonl`` and one parquet and one mp4 per episode."""
    lines = [{"episode_index": i, "tasks": ["play"], "length": len(e["frames"])}
             for i, e in enumerate(episodes)]  # fmt: skip
    (root / "meta" / "episodes.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    integer = info["features"]["action"]["dtype"] == "int64"
    for i, ep in enumerate(episodes):
        path = root / info["data_path"].format(episode_chunk=0, episode_index=i)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_step_table(episodes, [i], info["fps"], integer), path)
        mp4 = info["video_path"].format(episode_chunk=0, video_key=CAMERA, episode_index=i)
        write_video(root / mp4, ep["frames"], **video)


def _write_v30(
    root: Path, episodes: Sequence[dict[str, np.ndarray]], info: dict, video: dict
) -> None:
    """v3.0: one parquet and one mp4 for all episodes, and the episode table that says
    where each starts in them."""
    fps = info["fps"]
    integer = info["features"]["action"]["dtype"] == "int64"
    path = root / info["data_path"].format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_step_table(episodes, list(range(len(episodes))), fps, integer), path)
    mp4 = info["video_path"].format(video_key=CAMERA, chunk_index=0, file_index=0)
    write_video(root / mp4, np.concatenate([e["frames"] for e in episodes]), **video)
    rows: dict[str, list[Any]] = {}
    start = 0
    for i, n in enumerate(len(e["frames"]) for e in episodes):
        row = {
            "episode_index": i, "tasks": ["play"], "length": n, "data/chunk_index": 0,
            "data/file_index": 0, "dataset_from_index": start, "dataset_to_index": start + n,
            f"videos/{CAMERA}/chunk_index": 0, f"videos/{CAMERA}/file_index": 0,
            f"videos/{CAMERA}/from_timestamp": start / fps,
            f"videos/{CAMERA}/to_timestamp": (start + n) / fps,
        }  # fmt: skip
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
        start += n
    meta = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    meta.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), meta)


def write_lerobot_dataset(
    root: str | os.PathLike,
    episodes: Sequence[dict[str, np.ndarray]],
    *,
    version: str = "v2.1",
    fps: float = 10.0,
    action_names: Sequence[str] | None = None,
    lossless: bool = True,
    crf: int = 23,
    gop: int | None = 8,
) -> Path:
    """Write ``episodes`` as a LeRobot dataset at ``root``; returns ``root``.

    Args:
        root: dataset folder (created).
        episodes: one dict per episode with ``frames uint8 [T, H, W, 3]``, ``actions
            [T, k]`` (integer dtype: an ``int64`` feature, as discrete game actions are
            stored; float: ``float32``) and optionally ``rewards [T]``.
        version: ``"v2.1"`` or ``"v3.0"``.
        fps: frame rate.
        action_names: the action feature's ``names``.
        lossless: lossless RGB h264, else yuv420p at ``crf`` (as published datasets are).
        crf: quality of lossy video.
        gop: keyframe interval of the mp4s (``None``: the encoder's default).
    """
    if version not in ("v2.1", "v3.0"):
        raise ValueError(f"version must be 'v2.1' or 'v3.0'; got {version!r}")
    if not episodes:
        raise ValueError("episodes must not be empty")
    root = Path(root)
    lengths = [len(e["frames"]) for e in episodes]
    if version == "v2.1":
        data_path = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        video_path = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    else:
        data_path = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    info = {
        "codebase_version": version, "robot_type": "wmkit-test", "fps": fps,
        "chunks_size": 1000, "total_episodes": len(episodes), "total_frames": sum(lengths),
        "data_path": data_path, "video_path": video_path,
        "features": _features(episodes[0], action_names),
    }  # fmt: skip
    _write_json(root / "meta" / "info.json", info)
    all_actions = np.concatenate([np.asarray(e["actions"]).reshape(len(e["frames"]), -1)
                                  for e in episodes])  # fmt: skip
    stats = {"action": {"min": all_actions.min(0).tolist(), "max": all_actions.max(0).tolist()}}
    _write_json(root / "meta" / "stats.json", stats)
    video = {"fps": fps, "lossless": lossless, "crf": crf, "gop": gop}
    (_write_v21 if version == "v2.1" else _write_v30)(root, episodes, info, video)
    return root
