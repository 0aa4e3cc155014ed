"""`VideoFolderSource`: a plain folder of videos as an action-free `EpisodeSource`.

Each file is one episode (for latent-action models and tokenizers, which need no actions).
Windows are read by seeking to the keyframe before ``start`` (``wmkit.core.video_io``), so a
late window never decodes the whole file. ``read_clip`` is the shared window reader (also
used by ``LeRobotSource``): decode ``[start, stop)`` of a file and optionally resize.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.source import StepData
from wmkit.core.video_io import first_video_stream, read_video

__all__ = ["VIDEO_SUFFIXES", "VideoFolderSource", "probe_video", "read_clip", "resize_frames"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def resize_frames(frames: np.ndarray, resolution: int) -> np.ndarray:
    """Resize ``uint8 [T, H, W, 3]`` frames to ``resolution x resolution``.

    Shrinking averages over each output pixel's area (no aliasing); growing is bilinear.
    The aspect ratio is not kept (no crop): non-square videos are squeezed.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1; got {resolution}")
    t, h, w, _ = frames.shape
    if t == 0:
        return np.zeros((0, resolution, resolution, 3), np.uint8)
    if (h, w) == (resolution, resolution):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    if resolution <= min(h, w):
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    else:
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # [T, R, R, 3]
    return np.ascontiguousarray(x.numpy())


def probe_video(path: str | os.PathLike) -> tuple[int, float, int, int]:
    """``(num_frames, fps, height, width)`` of ``path``'s first video stream.

    The frame count comes from the container header when it has one (mp4); otherwise
    (mkv, webm) the frames are decoded once and counted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    try:
        with av.open(str(path)) as container:
            stream, rate = first_video_stream(container, path)
            if not rate:
                raise ValueError(f"{path} has no frame rate in its header")
            count = int(stream.frames or 0)
            if count <= 0:
                count = sum(1 for _ in container.decode(stream))
            return count, float(rate), int(stream.height), int(stream.width)
    except av.FFmpegError as e:
        raise ValueError(f"cannot read video file {path}: {e}") from e


def read_clip(
    path: str | os.PathLike, start: int, stop: int, resolution: int | None = None
) -> np.ndarray:
    """Frames ``[start, stop)`` of the video at ``path`` as ``uint8 [T, H, W, 3]``.

    Seeks to the keyframe before ``start`` and decodes from there; frame ``i`` is the one
    shown at time ``i / fps`` after the stream's start. Resized to
    ``resolution x resolution`` when given (``resize_frames``).
    """
    if not 0 <= start <= stop:
        raise ValueError(f"need 0 <= start <= stop; got start={start}, stop={stop}")
    frames, _ = read_video(path, start=start, num_frames=stop - start)
    return frames if resolution is None else resize_frames(frames, resolution)


class VideoFolderSource:
    """Every video under ``root`` matching ``pattern`` is one action-free episode.

    Args:
        root: folder to search.
        pattern: glob pattern relative to ``root`` (``**`` recurses); only files ending in
            one of ``VIDEO_SUFFIXES`` count, hidden files (``.name``) are skipped.
        resolution: resize frames to ``resolution x resolution`` (area averaging when
            shrinking); ``None`` keeps each video's own size.

    Files may have different frame rates: each episode keeps its own (``episode_fps``);
    ``fps`` is the first file's. Frame counts are read lazily and cached.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        pattern: str = "**/*.mp4",
        resolution: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"video folder {self.root} does not exist")
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be >= 1 or None; got {resolution}")
        self.pattern = pattern
        self.resolution = resolution
        self.paths: list[Path] = sorted(
            p
            for p in self.root.glob(pattern)
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
        )
        if not self.paths:
            raise FileNotFoundError(
                f"no videos matching {pattern!r} (suffixes {', '.join(VIDEO_SUFFIXES)}) "
                f"under {self.root}"
            )
        self._probes: dict[int, tuple[int, float, int, int]] = {}
        self._fps = self._probe(0)[1]

    def _probe(self, episode: int) -> tuple[int, float, int, int]:
        if episode not in self._probes:
            self._probes[episode] = probe_video(self.paths[episode])
        return self._probes[episode]

    def _check_episode(self, episode: int) -> int:
        if not 0 <= episode < len(self.paths):
            raise IndexError(
                f"episode {episode} out of range; {self.root} has {len(self.paths)} videos"
            )
        return episode

    @property
    def action_spec(self) -> ActionSpec | None:
        """Always ``None``: plain videos carry no actions."""
        return None

    @property
    def fps(self) -> float:
        """Frame rate of the first video."""
        return self._fps

    def episode_fps(self, episode: int) -> float:
        """Frame rate of ``episode``'s file."""
        return self._probe(self._check_episode(episode))[1]

    def __len__(self) -> int:
        return len(self.paths)

    def episode_length(self, episode: int) -> int:
        return self._probe(self._check_episode(episode))[0]

    def _check_window(self, episode: int, start: int, stop: int) -> None:
        length = self.episode_length(episode)
        if not 0 <= start <= stop <= length:
            raise ValueError(
                f"window [{start}, {stop}) out of range for episode {episode} "
                f"({self.paths[episode]}, {length} frames)"
            )

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        self._check_window(episode, start, stop)
        if start == stop:
            _, _, h, w = self._probe(episode)
            size = (self.resolution,) * 2 if self.resolution else (h, w)
            return np.zeros((0, *size, 3), np.uint8)
        return read_clip(self.paths[episode], start, stop, self.resolution)

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        """Always ``{}`` (no actions, rewards or dones), after checking the window."""
        self._check_window(episode, start, stop)
        return {}
