"""`EpisodeWriter`: append episodes to a wmkit episode dataset, one atomic shard at a time.

The format (layout, atomic shard commits, resuming after a kill) is described in
:mod:`wmkit.core.data.episode_store`, whose :class:`~wmkit.core.data.episode_store.EpisodeStore`
reads what this writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from datetime import UTC, datetime
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
    FrameFormat,
    fsync_dir,
    sha256_of,
    write_json_atomic,
)
from wmkit.core.video import check_frames
from wmkit.core.video_io import write_video

__all__ = ["EpisodeWriter"]

# Settings that must match when a writer reopens an existing dataset to add episodes.
_RESUME_KEYS = (
    "env", "env_kwargs", "action_spec", "fps", "resolution", "frame_format", "crf", "chunk",
    "policy", "seed", "episodes_per_shard",
)  # fmt: skip


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
        write_json_atomic(self.root / MANIFEST, manifest)

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
        t = self._check_frames(frames)
        actions, rewards, dones = self._check_steps(t, actions, rewards, dones)
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
        file = self._write_frames(self._tmp, f"ep{index:06d}", frames)
        self._pending.append({
            "index": index, "length": t, "seed": seed, "info": info or {}, "file": file,
            "final_frame": n > t, "actions": actions, "rewards": rewards, "dones": dones,
        })  # fmt: skip
        if len(self._pending) >= self.settings["episodes_per_shard"]:
            self.commit()
        return index

    def _check_frames(self, frames: np.ndarray) -> int:
        """Check ``frames uint8 [T, H, W, 3]`` and return ``T``. The first episode fixes the
        dataset's resolution (written to the manifest at once); later ones must match it."""
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
        return t

    def _check_steps(
        self,
        t: int,
        actions: np.ndarray | None,
        rewards: np.ndarray | None,
        dones: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The episode's ``actions``, ``rewards`` and ``dones`` as the ``[T]``-long arrays the
        shard's steps table stores: actions checked against the action spec (zeros for an
        action-free dataset, whose table then drops them), missing rewards/dones as zeros."""
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
        return actions, rewards, dones

    def _write_frames(self, shard: Path, name: str, frames: np.ndarray) -> str:
        """Write an episode's frames into the open ``shard`` directory as ``name.mkv``
        (keyframe every ``chunk`` frames) or ``name.npz`` (one compressed array per ``chunk``
        frames), so readers decode a window without the whole episode; returns the file name."""
        if self.settings["frame_format"] == "video":
            file = f"{name}.mkv"
            crf = self.settings["crf"]
            write_video(
                shard / file,
                frames,
                fps=self.settings["fps"],
                lossless=crf is None,
                crf=crf if crf is not None else 0,
                gop=self.settings["chunk"],
            )
        else:
            file = f"{name}.npz"
            c = self.settings["chunk"]
            arrays = {f"chunk{i // c:06d}": frames[i : i + c] for i in range(0, len(frames), c)}
            np.savez_compressed(shard / file, **arrays)
        return file

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
                f: {"size": (self._tmp / f).stat().st_size, "sha256": sha256_of(self._tmp / f)}
                for f in files
            },
        }
        write_json_atomic(self._tmp / SHARD_META, meta)
        for f in files:
            with open(self._tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        final = self.shards_dir / f"{self.next_shard:06d}"
        os.rename(self._tmp, final)
        fsync_dir(self.shards_dir)
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
