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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.source import StepData
from wmkit.core.video import check_frames
from wmkit.core.video_io import read_video, write_video

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CorruptDatasetError",
    "EpisodeStore",
    "EpisodeWriter",
]

FORMAT_NAME = "wmkit-episodes"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_META = "shard.json"
STEPS = "steps.parquet"
FrameFormat = Literal["video", "npz"]

# Settings that must match when a writer reopens an existing dataset to add episodes.
_RESUME_KEYS = (
    "env", "env_kwargs", "action_spec", "fps", "resolution", "frame_format", "crf", "chunk",
    "policy", "seed", "episodes_per_shard",
)  # fmt: skip


class CorruptDatasetError(ValueError):
    """A dataset file is missing, truncated or unreadable; the message names the file."""


def _require(data: Any, key: str, path: Path, where: str = "") -> Any:
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("wmkit-core", "numpy", "av", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


class EpisodeWriter:
    """Append episodes to a dataset directory, one atomic shard at a time.

    Reopening an existing directory continues it (after checking the settings match), so a
    killed recording resumes: ``num_episodes`` says how many complete episodes are on disk.

    Args:
        root: dataset directory (created if missing).
        action_spec: the actions' spec; ``None`` for action-free video (imported from a
            folder of videos): episodes then have frames only, the manifest says
            ``"action_spec": null`` and ``steps.parquet`` has no ``action`` column.
        fps: frames per second of the recording.
        env: environment name (e.g. ``"crafter"``).
        env_kwargs: environment settings (task, scenario, camera, ...), JSON-serialisable.
        policy: the exploration policy's description, JSON-serialisable.
        seed: base seed of the recording.
        frame_format: ``"video"`` (mkv) or ``"npz"`` (compressed arrays).
        crf: ``None`` for lossless RGB video (default: pixel-art colours survive), else the
            h264 CRF of lossy yuv420p video.
        chunk: keyframe interval (video) or frames per compressed array (npz).
        episodes_per_shard: episodes per shard.
        extra: more JSON to store in the manifest (e.g. env versions).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        action_spec: ActionSpec | None,
        fps: float,
        env: str,
        env_kwargs: dict[str, Any] | None = None,
        policy: dict[str, Any] | str | None = None,
        seed: int | None = None,
        frame_format: FrameFormat = "video",
        crf: int | None = None,
        chunk: int = 16,
        episodes_per_shard: int = 8,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if frame_format not in ("video", "npz"):
            raise ValueError(f"frame_format must be 'video' or 'npz'; got {frame_format!r}")
        if episodes_per_shard < 1 or chunk < 1:
            raise ValueError("episodes_per_shard and chunk must be >= 1")
        self.root = Path(root)
        self.action_spec = action_spec
        self.settings: dict[str, Any] = {
            "env": env,
            "env_kwargs": env_kwargs or {},
            "action_spec": None if action_spec is None else action_spec.to_dict(),
            "fps": float(fps),
            "resolution": None,
            "frame_format": frame_format,
            "crf": crf,
            "chunk": int(chunk),
            "policy": policy,
            "seed": seed,
            "episodes_per_shard": int(episodes_per_shard),
        }
        self.extra = extra or {}
        self.shards_dir = self.root / "shards"
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.shards_dir.glob(".tmp-*"):
            shutil.rmtree(stale)
        manifest_path = self.root / MANIFEST
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            differ = [
                k for k in _RESUME_KEYS
                if k != "resolution" and manifest.get(k) != json.loads(json.dumps(self.settings[k]))
            ]  # fmt: skip
            if differ:
                raise ValueError(
                    f"{self.root} was recorded with different settings ({', '.join(differ)}: "
                    + "; ".join(f"{k}={manifest.get(k)!r} vs {self.settings[k]!r}" for k in differ)
                    + "); record into a new directory or use the same settings to resume"
                )
            self.settings["resolution"] = manifest.get("resolution")
        self._complete = sorted(
            int(p.name) for p in self.shards_dir.iterdir() if p.is_dir() and p.name.isdigit()
        )
        self.num_episodes = sum(
            len(json.loads((self.shards_dir / f"{i:06d}" / SHARD_META).read_text())["episodes"])
            for i in self._complete
        )
        self._pending: list[dict[str, Any]] = []
        self._tmp: Path | None = None
        if not manifest_path.exists():
            self._write_manifest()

    # -------------------------------------------------------------------------------- write
    def _write_manifest(self) -> None:
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **self.settings,
            "versions": _versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **self.extra,
        }
        _write_json_atomic(self.root / MANIFEST, manifest)

    @property
    def next_shard(self) -> int:
        return (self._complete[-1] + 1) if self._complete else 0

    def add_episode(
        self,
        frames: np.ndarray,
        actions: np.ndarray | None,
        rewards: np.ndarray | None = None,
        dones: np.ndarray | None = None,
        *,
        seed: int | None = None,
        info: dict[str, Any] | None = None,
        final_frame: np.ndarray | None = None,
    ) -> int:
        """Add one episode: ``frames uint8 [T, H, W, 3]``, ``actions [T, *action_shape]``
        (action ``t`` taken after frame ``t``), ``rewards``/``dones`` ``[T]`` and, if known,
        ``final_frame uint8 [H, W, 3]``, the observation after the last action. Returns its
        index. ``actions`` is ``None`` exactly when the dataset is action-free.

        The frames file is written at once into the open (temporary) shard; the shard is
        committed when it holds ``episodes_per_shard`` episodes or on ``close``.
        """
        check_frames(frames, "frames")
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {frames.shape}")
        t = frames.shape[0]
        if t < 1:
            raise ValueError("an episode needs at least one frame")
        res = [int(frames.shape[1]), int(frames.shape[2])]
        if self.settings["resolution"] is None:
            self.settings["resolution"] = res
            self._write_manifest()
        elif list(self.settings["resolution"]) != res:
            raise ValueError(
                f"frames are {res[0]}x{res[1]} but the dataset is "
                f"{self.settings['resolution'][0]}x{self.settings['resolution'][1]}"
            )
        import torch

        if (actions is None) != (self.action_spec is None):
            raise ValueError(
                "actions must be given for a dataset with an action spec and None for an "
                f"action-free one; got {'None' if actions is None else 'actions'} for "
                f"{'no action spec' if self.action_spec is None else self.action_spec.describe()}"
            )
        actions = np.zeros(t, np.int64) if actions is None else np.asarray(actions)
        if self.action_spec is not None:
            self.action_spec.validate(torch.from_numpy(actions).unsqueeze(0), name="actions")
        if actions.shape[0] != t:
            raise ValueError(f"actions has {actions.shape[0]} steps but frames has {t}")
        rewards = np.zeros(t, np.float32) if rewards is None else np.asarray(rewards, np.float32)
        dones = np.zeros(t, bool) if dones is None else np.asarray(dones).astype(bool)
        if rewards.shape != (t,) or dones.shape != (t,):
            raise ValueError(f"rewards and dones must be [{t}]; got {rewards.shape}, {dones.shape}")
        if final_frame is not None:
            final_frame = np.asarray(final_frame)
            if final_frame.shape != frames.shape[1:] or final_frame.dtype != np.uint8:
                raise ValueError(
                    f"final_frame must be one uint8 frame {tuple(frames.shape[1:])} like the "
                    f"episode's; got {final_frame.dtype} {tuple(final_frame.shape)}"
                )
            frames = np.concatenate([frames, final_frame[None]])
        n = frames.shape[0]  # frames on disk: t, or t + 1 with the final observation

        if self._tmp is None:
            self._tmp = self.shards_dir / f".tmp-{self.next_shard:06d}"
            self._tmp.mkdir()
        index = self.num_episodes + len(self._pending)
        name = f"ep{index:06d}"
        if self.settings["frame_format"] == "video":
            file = f"{name}.mkv"
            crf = self.settings["crf"]
            write_video(
                self._tmp / file,
                frames,
                fps=self.settings["fps"],
                lossless=crf is None,
                crf=crf if crf is not None else 0,
                gop=self.settings["chunk"],
            )
        else:
            file = f"{name}.npz"
            c = self.settings["chunk"]
            arrays = {f"chunk{i // c:06d}": frames[i : i + c] for i in range(0, n, c)}
            np.savez_compressed(self._tmp / file, **arrays)
        self._pending.append({
            "index": index, "length": t, "seed": seed, "info": info or {}, "file": file,
            "final_frame": n > t, "actions": actions, "rewards": rewards, "dones": dones,
        })  # fmt: skip
        if len(self._pending) >= self.settings["episodes_per_shard"]:
            self.commit()
        return index

    def commit(self) -> None:
        """Write the open shard's steps and metadata and move it into place atomically."""
        if not self._pending or self._tmp is None:
            return
        eps = self._pending
        episode_col = np.concatenate([np.full(e["length"], e["index"], np.int64) for e in eps])
        step_col = np.concatenate([np.arange(e["length"], dtype=np.int32) for e in eps])
        actions = np.concatenate([e["actions"] for e in eps])
        flat = actions.reshape(len(actions), -1)
        if self.action_spec is None:
            action_arr = None
        elif self.action_spec.action_shape:
            action_arr = pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1)), flat.shape[1]
            )
        else:
            action_arr = pa.array(actions)
        table = pa.table({
            "episode": episode_col,
            "step": step_col,
            **({} if action_arr is None else {"action": action_arr}),
            "reward": np.concatenate([e["rewards"] for e in eps]),
            "done": np.concatenate([e["dones"] for e in eps]),
        })  # fmt: skip
        pq.write_table(table, self._tmp / STEPS, compression="zstd")
        files = [STEPS, *(e["file"] for e in eps)]
        meta = {
            "episodes": [
                {k: e[k] for k in ("index", "length", "seed", "info", "file")}
                | ({"final_frame": True} if e["final_frame"] else {})
                for e in eps
            ],
            "files": {
                f: {"size": (self._tmp / f).stat().st_size, "sha256": _sha256(self._tmp / f)}
                for f in files
            },
        }
        _write_json_atomic(self._tmp / SHARD_META, meta)
        for f in files:
            with open(self._tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        final = self.shards_dir / f"{self.next_shard:06d}"
        os.rename(self._tmp, final)
        _fsync_dir(self.shards_dir)
        self._complete.append(int(final.name))
        self.num_episodes += len(eps)
        self._pending, self._tmp = [], None

    def close(self) -> None:
        """Commit the open shard (a partial one at the end of a recording)."""
        self.commit()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()


# ------------------------------------------------------------------------------------ read
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
        spec = _require(self.manifest, "action_spec", manifest_path)  # null: action-free video
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
            files = _require(meta, "files", meta_path)
            if not isinstance(files, dict):
                raise CorruptDatasetError(f"{meta_path}: 'files' must be a JSON object")
            for file, expected in files.items():
                path = shard / file
                if not path.is_file():
                    raise CorruptDatasetError(f"{path} is missing")
                size = path.stat().st_size
                if size != _require(expected, "size", meta_path, f"files[{file!r}]."):
                    raise CorruptDatasetError(
                        f"{path} is {size} bytes, expected {expected['size']} (truncated or "
                        "overwritten)"
                    )
            for i, e in enumerate(_require(meta, "episodes", meta_path)):
                where = f"episodes[{i}]."
                if _require(e, "index", meta_path, where) != len(self._episodes):
                    raise CorruptDatasetError(
                        f"{meta_path} lists episode {e['index']}, expected {len(self._episodes)}"
                        " (a shard is missing)"
                    )
                final = bool(e.get("final_frame", False))
                name_, length, seed, info = (
                    _require(e, k, meta_path, where) for k in ("file", "length", "seed", "info")
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
        return float(_require(self.manifest, "fps", self.root / MANIFEST))

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
            c = int(_require(self.manifest, "chunk", self.root / MANIFEST))
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
            for file, expected in _require(meta, "files", meta_path).items():
                sha256 = _require(expected, "sha256", meta_path, f"files[{file!r}].")
                if _sha256(shard / file) != sha256:
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
