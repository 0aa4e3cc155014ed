"""wmkit's sharded episode format: ``EpisodeWriter`` writes it, ``EpisodeStore`` reads it.

Layout (format version 1)::

    DIR/
      manifest.json            # env, ActionSpec (null: action-free video), fps, resolution, ...
      shards/
        000000/                # one shard = up to `episodes_per_shard` consecutive episodes
          shard.json           # episodes (index, length, seed, info); size + sha256 per file
          steps.parquet        # columnar per-step data: episode, step, action, reward, done
          ep000000.mkv         # frames: lossless RGB video (libx264rgb qp 0) or lossy (crf) ...
          ep000001.npz         # ... or compressed arrays in chunks of `chunk` frames
        000001/
      shards/.tmp-000002/      # a shard being written; renamed into place when complete

An episode of ``T`` steps has ``T`` frames, frame ``t`` the observation before action ``t``.
Its frames file may hold one more: the *final observation*, after the last action (the
episode's entry in ``shard.json`` then says ``"final_frame": true``). Without it the last
transition, often the only one with ``done`` set, has no next frame, so a head that reads
``(frame t, action t, frame t + 1)`` never sees a termination (DIAMOND keeps the final
observation for the same reason). Readers that know nothing of it read the first ``T``
frames as before.

A shard appears under its final name only once all of its files are written (directory
rename is atomic), so a killed recording leaves complete shards plus a ``.tmp-`` directory
that the next writer removes; recording then resumes after the last complete episode.
Readers check every file against the size in ``shard.json`` (``verify`` also checks the
sha256) and name the file that is missing, truncated or corrupt.

Frames are read by window: video files are written with a keyframe every ``chunk`` frames
and read by seeking, npz files hold one compressed array per ``chunk`` frames, so a clip
never decodes a whole episode.

The writer lives in :mod:`wmkit.core.data.episode_writer` and the names both sides share in
:mod:`wmkit.core.data.episode_format`; both are importable from here as before.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.episode_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    SHARD_META,
    STEPS,
    CorruptDatasetError,
    require_key,
    sha256_of,
)
from wmkit.core.data.episode_writer import EpisodeWriter
from wmkit.core.data.source import StepData
from wmkit.core.video_io import read_video

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CorruptDatasetError",
    "EpisodeStore",
    "EpisodeWriter",
]


@dataclass(frozen=True)
class _Episode:
    shard: Path
    file: str
    length: int
    seed: int | None
    info: dict[str, Any]
    final_frame: bool = False


class EpisodeStore:
    """Read a dataset written by :class:`EpisodeWriter`; an ``EpisodeSource``.

    Opening checks the manifest and that every file of every complete shard exists with the
    recorded size; ``verify()`` also checks checksums and decodes nothing.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no {MANIFEST} in {self.root}: not a wmkit episode dataset "
                "(record one with `wmkit record`)"
            )
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise CorruptDatasetError(f"{manifest_path} is not valid JSON: {e}") from e
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT_NAME:
            raise CorruptDatasetError(f"{manifest_path} is not a {FORMAT_NAME} manifest")
        if self.manifest.get("version", 0) > FORMAT_VERSION:
            raise CorruptDatasetError(
                f"{manifest_path} has format version {self.manifest['version']}; this "
                f"wmkit-core reads up to {FORMAT_VERSION}: upgrade wmkit-core"
            )
        spec = require_key(self.manifest, "action_spec", manifest_path)  # null: action-free video
        try:
            self._spec = None if spec is None else ActionSpec.from_dict(spec)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise CorruptDatasetError(f"{manifest_path} has an invalid 'action_spec': {e}") from e
        self._episodes: list[_Episode] = []
        self._shard_of: list[int] = []
        self._shards: list[Path] = []
        shards_dir = self.root / "shards"
        names = sorted(p.name for p in shards_dir.iterdir() if p.is_dir() and p.name.isdigit())
        for name in names:
            shard = shards_dir / name
            meta_path = shard / SHARD_META
            if not meta_path.is_file():
                raise CorruptDatasetError(f"{meta_path} is missing")
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as e:
                raise CorruptDatasetError(f"{meta_path} is not valid JSON: {e}") from e
            files = require_key(meta, "files", meta_path)
            if not isinstance(files, dict):
                raise CorruptDatasetError(f"{meta_path}: 'files' must be a JSON object")
            for file, expected in files.items():
                path = shard / file
                if not path.is_file():
                    raise CorruptDatasetError(f"{path} is missing")
                size = path.stat().st_size
                if size != require_key(expected, "size", meta_path, f"files[{file!r}]."):
                    raise CorruptDatasetError(
                        f"{path} is {size} bytes, expected {expected['size']} (truncated or "
                        "overwritten)"
                    )
            for i, e in enumerate(require_key(meta, "episodes", meta_path)):
                where = f"episodes[{i}]."
                if require_key(e, "index", meta_path, where) != len(self._episodes):
                    raise CorruptDatasetError(
                        f"{meta_path} lists episode {e['index']}, expected {len(self._episodes)}"
                        " (a shard is missing)"
                    )
                final = bool(e.get("final_frame", False))
                name_, length, seed, info = (
                    require_key(e, k, meta_path, where) for k in ("file", "length", "seed", "info")
                )
                self._episodes.append(_Episode(shard, name_, length, seed, info, final))
                self._shard_of.append(len(self._shards))
            self._shards.append(shard)
        self._steps_cache = lru_cache(maxsize=8)(self._load_steps)

    # ------------------------------------------------------------------------ EpisodeSource
    @property
    def action_spec(self) -> ActionSpec | None:
        """The actions' spec; ``None`` for action-free video (``read_steps`` gives ``{}``)."""
        return self._spec

    @property
    def fps(self) -> float:
        return float(require_key(self.manifest, "fps", self.root / MANIFEST))

    @property
    def resolution(self) -> tuple[int, int] | None:
        res = self.manifest.get("resolution")
        return (int(res[0]), int(res[1])) if res else None

    def __len__(self) -> int:
        return len(self._episodes)

    def _episode(self, episode: int) -> _Episode:
        if not 0 <= episode < len(self._episodes):
            raise IndexError(f"episode {episode} out of range: {self.root} has {len(self)}")
        return self._episodes[episode]

    def episode_length(self, episode: int) -> int:
        return self._episode(episode).length

    def episode_seed(self, episode: int) -> int | None:
        return self._episode(episode).seed

    def has_final_frame(self, episode: int) -> bool:
        """Whether ``episode`` stores its final observation as frame ``length``, the one after
        its last action (``read_frames`` may then stop at ``length + 1``)."""
        return self._episode(episode).final_frame

    def _window(self, episode: int, start: int, stop: int, frames: bool = False) -> _Episode:
        ep = self._episode(episode)
        end = ep.length + (frames and ep.final_frame)
        if not 0 <= start < stop <= end:
            what = "frames" if frames else "steps"
            raise IndexError(
                f"window [{start}, {stop}) outside the {end} {what} of episode {episode}"
            )
        return ep

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)``; ``stop`` may be ``length + 1`` when the episode has its
        final observation (:meth:`has_final_frame`)."""
        ep = self._window(episode, start, stop, frames=True)
        path = ep.shard / ep.file
        if path.suffix == ".npz":
            c = int(require_key(self.manifest, "chunk", self.root / MANIFEST))
            try:
                with np.load(path) as z:
                    parts = [z[f"chunk{i:06d}"] for i in range(start // c, (stop - 1) // c + 1)]
            except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
                raise CorruptDatasetError(f"cannot read frames from {path}: {e}") from e
            frames = np.concatenate(parts)
            offset = (start // c) * c
            return frames[start - offset : stop - offset]
        try:
            frames, _ = read_video(path, start=start, num_frames=stop - start)
        except ValueError as e:
            raise CorruptDatasetError(f"cannot read frames from {path}: {e}") from e
        return frames

    def _load_steps(self, shard_index: int) -> dict[int, StepData]:
        path = self._shards[shard_index] / STEPS
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise CorruptDatasetError(f"cannot read {path}: {e}") from e
        episode = table.column("episode").to_numpy()
        action_col = table.column("action").combine_chunks()
        if isinstance(action_col.type, pa.FixedSizeListType):
            actions = action_col.flatten().to_numpy().reshape(len(table), *self._spec.action_shape)
        else:
            actions = action_col.to_numpy()
        actions = actions.astype(np.float32 if self._spec.kind == "continuous" else np.int64)
        rewards = table.column("reward").to_numpy().astype(np.float32)
        dones = table.column("done").to_numpy(zero_copy_only=False).astype(bool)
        out: dict[int, StepData] = {}
        for idx in np.unique(episode):
            rows = episode == idx
            out[int(idx)] = {"actions": actions[rows], "rewards": rewards[rows],
                             "dones": dones[rows]}  # fmt: skip
        return out

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        self._window(episode, start, stop)
        if self._spec is None:
            return {}
        steps = self._steps_cache(self._shard_of[episode])[episode]
        return {k: v[start:stop] for k, v in steps.items()}

    # ------------------------------------------------------------------------------- extras
    def verify(self) -> None:
        """Check every file's sha256 against its shard's record; raise naming the first bad one."""
        for shard in self._shards:
            meta_path = shard / SHARD_META
            meta = json.loads(meta_path.read_text())
            for file, expected in require_key(meta, "files", meta_path).items():
                sha256 = require_key(expected, "sha256", meta_path, f"files[{file!r}].")
                if sha256_of(shard / file) != sha256:
                    raise CorruptDatasetError(f"{shard / file} does not match its sha256")

    def read_episode(self, episode: int) -> tuple[np.ndarray, StepData]:
        """Whole episode: frames ``[T]`` and step data (see :meth:`final_frame`)."""
        n = self.episode_length(episode)
        return self.read_frames(episode, 0, n), self.read_steps(episode, 0, n)

    def final_frame(self, episode: int) -> np.ndarray | None:
        """The observation after ``episode``'s last action, ``uint8 [H, W, 3]``, or ``None``
        when it was not recorded."""
        if not self.has_final_frame(episode):
            return None
        n = self.episode_length(episode)
        return self.read_frames(episode, n, n + 1)[0]

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: rebuild the cache
        state = self.__dict__.copy()
        state.pop("_steps_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._steps_cache = lru_cache(maxsize=8)(self._load_steps)
