"""Read and write video files (mp4, mkv, GIF) with PyAV.

Frames are ``uint8 [T, H, W, 3]`` numpy arrays. mp4 defaults to lossy h264 (crf 18, for
viewing); ``lossless=True`` writes ``libx264rgb`` at qp 0, which keeps every RGB value
exactly (pixel-art games such as Crafter lose colours under 4:2:0 h264). GIFs use a
palette, so they are for looking at, not for data.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from torch import Tensor

from wmkit.core.video import check_frames

__all__ = ["first_video_stream", "read_video", "write_gif", "write_video"]


def _as_frames(frames: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(frames, Tensor):
        frames = frames.detach().cpu().numpy()
    check_frames(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be uint8 [T, H, W, C]; got shape {tuple(frames.shape)}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    if frames.shape[0] == 0:
        raise ValueError("frames is empty (T = 0); nothing to write")
    return np.ascontiguousarray(frames)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Tensor,
    fps: float = 10.0,
    *,
    lossless: bool = False,
    crf: int = 18,
    gop: int | None = None,
) -> Path:
    """Write ``uint8 [T, H, W, C]`` frames to ``path`` (mp4/mkv/avi, or .gif → ``write_gif``).

    Odd frame sizes are fine for lossless RGB; lossy yuv420p needs even sizes, so frames are
    padded by one pixel of edge where needed. The file is written to a temporary name and
    renamed, so a crash never leaves a half-written file under ``path``. ``gop`` sets the
    keyframe interval: smaller means faster random access (``read_video`` seeks to the
    keyframe before ``start``) and bigger files.
    """
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return write_gif(path, frames, fps=fps)
    frames = _as_frames(frames)
    if not lossless:
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(tmp), mode="w") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=rate)
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": "veryfast"}
        else:
            stream = container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        if gop is not None:
            stream.codec_context.gop_size = int(gop)
        _encode(container, stream, frames)
    os.replace(tmp, path)
    return path


def _encode(container: Any, stream: Any, frames: np.ndarray) -> None:
    """Encode ``uint8 [T, H, W, 3]`` frames into ``stream`` and flush it into ``container``."""
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_gif(path: str | os.PathLike, frames: np.ndarray | Tensor, fps: float = 10.0) -> Path:
    """Write an animated GIF (looping) of ``uint8 [T, H, W, C]`` frames."""
    path = Path(path)
    frames = _as_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    with av.open(str(tmp), mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb8"
        _encode(container, stream, frames)
    os.replace(tmp, path)
    return path


def first_video_stream(container: Any, path: Path) -> tuple[Any, Fraction | None]:
    """The first video stream of an open ``av`` ``container`` (read from ``path``) and its
    frame rate, ``None`` when the header has none; a ValueError when there is no video."""
    if not container.streams.video:
        raise ValueError(f"{path} has no video stream")
    stream = container.streams.video[0]
    return stream, stream.average_rate or stream.base_rate


def read_video(
    path: str | os.PathLike, start: int = 0, num_frames: int | None = None
) -> tuple[np.ndarray, float]:
    """Read frames ``[start, start + num_frames)`` of a video as ``uint8 [T, H, W, 3]``.

    Returns ``(frames, fps)``. For ``start > 0`` it seeks to the keyframe before ``start``
    and decodes from there (frame indices come from timestamps, assuming constant frame
    rate), so reading a late window does not decode the whole file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    if start < 0 or (num_frames is not None and num_frames < 0):
        raise ValueError(f"start and num_frames must be >= 0; got {start}, {num_frames}")
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream, rate = first_video_stream(container, path)
            fps = float(rate or 0.0)
            origin = stream.start_time or 0
            seekable = bool(rate) and stream.time_base is not None and start > 0
            if seekable:
                target = origin + int(start / (rate * stream.time_base))
                container.seek(target, stream=stream, backward=True, any_frame=False)
            index = -1
            for frame in container.decode(stream):
                if seekable and frame.pts is not None:
                    index = round((frame.pts - origin) * stream.time_base * rate)
                else:
                    index += 1
                if index < start:
                    continue
                if num_frames is not None and len(out) >= num_frames:
                    break
                out.append(frame.to_ndarray(format="rgb24"))
    except av.FFmpegError as e:
        raise ValueError(f"cannot decode video file {path}: {e}") from e
    if num_frames is not None and len(out) < num_frames:
        raise ValueError(
            f"{path} has too few frames: asked for [{start}, {start + num_frames}), "
            f"got {len(out)} from {start}"
        )
    if not out:
        return np.zeros((0, 0, 0, 3), np.uint8), fps
    return np.stack(out), fps
