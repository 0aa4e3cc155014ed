"""`LeRobotSource`: a local LeRobot dataset (codebase v2.x or v3.0) as an `EpisodeSource`.

LeRobot stores per-step data in parquet files and each camera's frames in mp4 files,
described by ``meta/info.json``:

- v2.x: one parquet per episode (``data_path`` with ``episode_chunk``/``episode_index``),
  one mp4 per camera per episode, episode lengths in ``meta/episodes.jsonl``.
- v3.0: many episodes per parquet/mp4 file (``data_path`` with ``chunk_index``/
  ``file_index``); ``meta/episodes/chunk-*/file-*.parquet`` gives each episode's files
  (``data/chunk_index``, ``data/file_index``, ``videos/<camera>/chunk_index``, ...) and
  where its frames start in the shared mp4 (``videos/<camera>/from_timestamp``).

Only local files are read (download a dataset first, e.g. with ``huggingface-cli
download``). The first clip of an episode decodes the episode's frames once (seeking to the
keyframe before it in a shared v3.0 mp4) and keeps them in a per-process ``FrameCache``, so
later clips of that episode are slices; an episode too large for the cache is read by
window, seeking to the keyframe before each. Per-step columns are read once per parquet
file and kept in a small cache. For training on many epochs, ``wmkit data import`` once is
faster still.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.frame_cache import FrameCache
from wmkit.core.data.lerobot_meta import (
    LeRobotEpisode,
    frame_hw,
    infer_action_spec,
    read_episodes,
    read_info,
    stats_extremes,
    to_numpy,
)
from wmkit.core.data.source import StepData
from wmkit.core.data.video_folder import read_clip

__all__ = ["LeRobotSource"]

_CACHED_FILES = 16


class LeRobotSource:
    """Episodes of a local LeRobot dataset: one camera's frames, actions, rewards, dones.

    Args:
        root: dataset folder (holding ``meta/info.json``).
        camera_key: video feature to read, e.g. ``"observation.images.top"``; default the
            first feature with dtype ``"video"`` in ``info.json``.
        action_key: parquet column with the actions.
        reward_key: reward column, or ``None``; omitted from ``read_steps`` when absent.
        done_key: a column of *terminations* to read as ``dones``, or ``None`` (the default:
            no ``dones``). LeRobot's ``next.done`` is True on every episode's last frame,
            however the episode ended: a termination only in datasets whose episodes all end
            by one. wmkit's ``dones`` are terminations (as the recorders write them, see
            ``RecordableEnv``), and a time limit or an operator stopping the recording read
            as one teaches a done head an end nothing in the frames announces; so pass
            ``done_key="next.done"`` only where that holds.
        action_spec: the actions' spec: an ``ActionSpec``, a mapping of its fields (as a
            YAML config gives it) or a JSON string (``ActionSpec.coerce``). ``None`` infers
            it from the feature (``infer_action_spec``): an integer column of shape ``[1]``
            or ``[]`` is discrete with ``n`` = max + 1, a wider integer column
            multi-discrete, a float column continuous with per-component ``low``/``high``;
            the extremes come from ``meta/stats.json`` min/max if present, else from a scan
            of every data file.
        resolution: resize frames to ``resolution x resolution`` (area averaging when
            shrinking); ``None`` keeps the recorded size.
        cache_mb: memory for decoded episodes, per process (each ``DataLoader`` worker has
            its own); ``0`` decodes every window afresh.

    Episode ``i`` here is the ``i``-th episode in order of LeRobot's ``episode_index``
    (``episode_indices[i]``). Action ``t`` is the one taken after observing frame ``t``,
    as in LeRobot.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        camera_key: str | None = None,
        action_key: str = "action",
        reward_key: str | None = "next.reward",
        done_key: str | None = None,
        action_spec: ActionSpec | dict[str, Any] | str | None = None,
        resolution: int | None = None,
        cache_mb: float = 512.0,
    ) -> None:
        self.root = Path(root)
        if cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0; got {cache_mb}")
        self._frame_cache = FrameCache(int(cache_mb * 2**20))
        info = read_info(self.root)
        info_path = self.root / "meta" / "info.json"
        self.version = str(info["codebase_version"])
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be >= 1 or None; got {resolution}")
        self.resolution = resolution
        self._fps = float(info["fps"])
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.camera_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "video"]
        if not self.camera_keys:
            raise ValueError(
                f"{info_path} has no video features (dtype 'video'); image-only LeRobot "
                "datasets are not supported"
            )
        if camera_key is None:
            camera_key = self.camera_keys[0]
        elif camera_key not in self.camera_keys:
            raise ValueError(
                f"camera_key {camera_key!r} is not a video feature of {self.root}; "
                f"available: {self.camera_keys}"
            )
        self.camera_key = camera_key
        if action_key not in self.features:
            columns = [k for k in self.features if k not in self.camera_keys]
            raise ValueError(
                f"action_key {action_key!r} is not a feature of {self.root}; available: {columns}"
            )
        self.action_key = action_key
        self.reward_key = reward_key if reward_key in self.features else None
        self.done_key = done_key if done_key in self.features else None
        self._info = info
        self._episodes = read_episodes(self.root, info, camera_key)
        if not self._episodes:
            raise ValueError(f"LeRobot dataset {self.root} has no episodes")
        self._files: OrderedDict[Path, dict[str, np.ndarray]] = OrderedDict()
        self._rows: dict[int, np.ndarray] = {}
        self._action_shape = tuple(int(s) for s in self.features[action_key].get("shape", (1,)))
        given = ActionSpec.coerce_optional(action_spec, "LeRobotSource action_spec")
        self._action_spec = given if given is not None else self._infer_spec()
        per_step = math.prod(self._action_shape)
        if math.prod(self._action_spec.action_shape) != per_step:
            raise ValueError(
                f"action_spec {self._action_spec.describe()} does not fit column "
                f"{action_key!r} of shape {self._action_shape}"
            )

    # ----------------------------------------------------------------------------------
    # action spec
    def _action_extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-component min and max of the action column: ``meta/stats.json`` if it has
        them at the right size, else a scan of every data file."""
        size = math.prod(self._action_shape)
        extremes = stats_extremes(self.root, self.action_key, size)
        if extremes is not None:
            return extremes
        seen = [self._file_columns(p)[self.action_key] for p in self._data_paths()]
        values = np.concatenate(seen).astype(np.float64).reshape(-1, size)
        return values.min(axis=0), values.max(axis=0)

    def _infer_spec(self) -> ActionSpec:
        """The action spec the column's feature describes (``infer_action_spec``)."""
        low, high = self._action_extremes()
        return infer_action_spec(self.features[self.action_key], self._action_shape, low, high)

    def _data_paths(self) -> list[Path]:
        return list(dict.fromkeys(e.data_path for e in self._episodes))

    # ----------------------------------------------------------------------------------
    # per-step data
    def _file_columns(self, path: Path) -> dict[str, np.ndarray]:
        if path in self._files:
            self._files.move_to_end(path)
            return self._files[path]
        if not path.is_file():
            raise FileNotFoundError(f"LeRobot data file {path} is missing")
        names = set(pq.read_schema(path).names)
        if self.action_key not in names:
            raise ValueError(f"LeRobot data file {path} has no column {self.action_key!r}")
        wanted = [self.action_key, self.reward_key, self.done_key, "episode_index"]
        columns = [c for c in dict.fromkeys(wanted) if c is not None and c in names]
        table = pq.read_table(path, columns=columns)
        out = {c: to_numpy(table.column(c)) for c in columns}
        self._files[path] = out
        if len(self._files) > _CACHED_FILES:
            self._files.popitem(last=False)
        return out

    def _episode_rows(self, episode: LeRobotEpisode) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The columns of ``episode``'s data file and the episode's row numbers in it."""
        columns = self._file_columns(episode.data_path)
        rows = self._rows.get(episode.index)
        if rows is None:
            if "episode_index" in columns:
                rows = np.flatnonzero(columns["episode_index"][:, 0] == episode.index)
            else:
                rows = np.arange(len(columns[self.action_key]))
            if len(rows) != episode.length:
                raise ValueError(
                    f"LeRobot data file {episode.data_path} has {len(rows)} rows for episode "
                    f"{episode.index}; the metadata says {episode.length}"
                )
            self._rows[episode.index] = rows
        return columns, rows

    # ----------------------------------------------------------------------------------
    # EpisodeSource
    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def episode_indices(self) -> list[int]:
        """LeRobot's ``episode_index`` of each of our episodes."""
        return [e.index for e in self._episodes]

    def __len__(self) -> int:
        return len(self._episodes)

    def _episode(self, episode: int, start: int, stop: int) -> LeRobotEpisode:
        if not 0 <= episode < len(self._episodes):
            raise IndexError(
                f"episode {episode} out of range; {self.root} has {len(self._episodes)} episodes"
            )
        ep = self._episodes[episode]
        if not 0 <= start <= stop <= ep.length:
            raise ValueError(
                f"window [{start}, {stop}) out of range for episode {episode} "
                f"(episode_index {ep.index}, {ep.length} frames)"
            )
        return ep

    def episode_length(self, episode: int) -> int:
        return self._episode(episode, 0, 0).length

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        ep = self._episode(episode, start, stop)
        if not ep.video_path.is_file():
            raise FileNotFoundError(
                f"LeRobot video file {ep.video_path} (camera {self.camera_key!r}, episode "
                f"{ep.index}) is missing"
            )
        shape = self.features[self.camera_key].get("shape", (0, 0, 3))
        h, w = (self.resolution,) * 2 if self.resolution else frame_hw(shape)
        if start == stop:
            return np.zeros((0, h, w, 3), np.uint8)
        frames = self._frame_cache.get(episode)
        if frames is None and self._frame_cache.fits(ep.length * h * w * 3):
            frames = read_clip(
                ep.video_path, ep.video_offset, ep.video_offset + ep.length, self.resolution
            )
            if len(frames) != ep.length:
                raise ValueError(
                    f"LeRobot video file {ep.video_path} holds {len(frames)} frames of episode "
                    f"{ep.index}; the metadata says {ep.length}"
                )
            self._frame_cache.put(episode, frames)
        if frames is not None:
            return frames[start:stop].copy()
        return read_clip(
            ep.video_path, ep.video_offset + start, ep.video_offset + stop, self.resolution
        )

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        ep = self._episode(episode, start, stop)
        columns, rows = self._episode_rows(ep)
        rows = rows[start:stop]
        spec = self._action_spec
        actions = columns[self.action_key][rows]
        out: StepData = {
            "actions": actions.reshape(len(rows), *spec.action_shape).astype(
                np.float32 if spec.kind == "continuous" else np.int64
            )
        }
        if self.reward_key is not None and self.reward_key in columns:
            out["rewards"] = columns[self.reward_key][rows, 0].astype(np.float32)
        if self.done_key is not None and self.done_key in columns:
            out["dones"] = columns[self.done_key][rows, 0].astype(bool)
        return out
