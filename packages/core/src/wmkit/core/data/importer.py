"""``wmkit data import SRC --out DIR``: copy a LeRobot dataset or a folder of videos into
wmkit's episode store once, so training reads clips at the store's speed.

Reading LeRobot in place decodes camera video (often lossy, with long keyframe intervals)
for every clip; the store keeps frames as compressed arrays or keyframe-dense video at the
training resolution. The import keeps what training needs: frames (resized when asked),
actions under the source's action spec (inferred or given), rewards, dones where the source
reads them, fps, and where every episode came from (the manifest's ``env`` is
``"lerobot:<name>"`` or ``"video_folder:<name>"`` and ``env_kwargs`` holds the source path and
reader options; each episode's ``info`` its source episode). A folder of videos becomes an
action-free store (``"action_spec": null``).

Like ``wmkit record``, the import is resumable: shards are committed atomically, and the
same command run again after a crash goes on after the last complete episode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.episode_loop import write_episodes
from wmkit.core.data.open_source import SourceKind, detect_kind, open_source
from wmkit.core.data.source import EpisodeSource

__all__ = ["import_dataset", "open_import_source"]


def open_import_source(
    src: str | os.PathLike,
    kind: SourceKind = "auto",
    camera_key: str | None = None,
    action_spec: ActionSpec | dict[str, Any] | str | None = None,
    resolution: int | None = None,
) -> tuple[EpisodeSource, str, dict[str, Any]]:
    """Open ``src`` for import; returns the source, its kind and the reader options used."""
    root = Path(src)
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "wmkit":
        raise ValueError(f"{root} is already a wmkit episode dataset; train on it directly")
    options: dict[str, Any] = {"resolution": resolution}
    if kind == "lerobot":
        options["camera_key"] = camera_key
        options["action_spec"] = ActionSpec.coerce_optional(action_spec, "--action-spec")
    elif camera_key is not None or action_spec is not None:
        raise ValueError(
            f"--camera-key and --action-spec apply to LeRobot datasets; {root} is read as a "
            "folder of videos, which has neither"
        )
    source = open_source(root, kind, **{k: v for k, v in options.items() if v is not None})
    used = {"resolution": resolution}
    if kind == "lerobot":
        used["camera_key"] = source.camera_key  # type: ignore[attr-defined]
    return source, kind, used


def import_dataset(
    src: str | os.PathLike,
    out: str | os.PathLike,
    kind: SourceKind = "auto",
    camera_key: str | None = None,
    action_spec: ActionSpec | dict[str, Any] | str | None = None,
    resolution: int | None = None,
    frame_format: str = "npz",
    chunk: int = 16,
    episodes_per_shard: int = 8,
    progress: bool = True,
) -> Path:
    """Import every episode of ``src`` into the episode store ``out``; returns ``out``.

    Rerun with the same arguments, it resumes after the last complete episode (the
    settings, source path included, must match).

    Args:
        src: a LeRobot dataset (v2.x or v3.0) or a folder of videos.
        out: episode-store directory.
        kind: ``auto``, ``lerobot`` or ``video_folder``.
        camera_key: LeRobot camera to import (default its first video feature).
        action_spec: the actions' spec (``ActionSpec``, mapping or JSON string); default
            inferred by the reader (``LeRobotSource``).
        resolution: resize frames to ``resolution x resolution``; ``None`` keeps the size
            (every episode must then have the same size).
        frame_format: ``"npz"`` (compressed arrays, the fastest to read) or ``"video"``
            (lossless mkv, smaller).
        chunk: frames per compressed array / keyframe interval.
        episodes_per_shard: episodes per atomic shard (what a crash can lose at most).
        progress: show a tqdm progress bar.
    """
    from wmkit.core.data.episode_store import EpisodeWriter

    if frame_format not in ("npz", "video"):
        raise ValueError(f"frame_format must be 'npz' or 'video'; got {frame_format!r}")
    source, kind, options = open_import_source(src, kind, camera_key, action_spec, resolution)
    root = Path(src).resolve()
    spec = source.action_spec
    writer = EpisodeWriter(
        out,
        action_spec=spec,
        fps=source.fps,
        env=f"{kind}:{root.name}",
        env_kwargs={"source": str(root), "kind": kind, **options},
        policy=None,
        seed=None,
        frame_format=frame_format,  # type: ignore[arg-type]
        chunk=chunk,
        episodes_per_shard=episodes_per_shard,
    )
    total = len(source)
    start = writer.num_episodes
    if start > total:
        raise ValueError(f"{out} holds {start} episodes but {src} has only {total}")

    def add_episode(i: int) -> int:
        n = source.episode_length(i)
        frames = source.read_frames(i, 0, n)
        steps = source.read_steps(i, 0, n) if spec is not None else {}
        origin = _origin(source, kind, root, i)
        try:
            writer.add_episode(
                frames, steps.get("actions"), steps.get("rewards"), steps.get("dones"),
                info=origin,
            )  # fmt: skip
        except ValueError as e:
            hint = "" if resolution else " (pass a resolution to give every episode one size)"
            raise ValueError(f"cannot import episode {i} of {src}: {e}{hint}") from e
        return n

    write_episodes(writer, add_episode, start=start, total=total, initial=start,
                   desc=f"import {root.name}", rate="frames_per_s", progress=progress)  # fmt: skip
    return Path(out)


def _origin(source: EpisodeSource, kind: str, root: Path, i: int) -> dict[str, Any]:
    """Where episode ``i`` came from, kept as its ``info``: the LeRobot episode index, or the
    video file relative to the imported folder."""
    origin: dict[str, Any] = {"source_episode": i}
    if kind == "lerobot":
        origin["episode_index"] = source.episode_indices[i]  # type: ignore[attr-defined]
    else:
        origin["file"] = str(source.paths[i].relative_to(root))  # type: ignore[attr-defined]
    return origin
