"""Video tensors at wmkit's boundaries and conversions between storage and model layouts.

Stored frames are ``uint8 [T, H, W, C]`` (or ``[B, T, H, W, C]``); every model sees
``float [B, T, C, H, W]`` in ``[-1, 1]``. These helpers convert, validate, resize and lay
videos side by side for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = [
    "check_frames",
    "check_video",
    "frame_grid",
    "resize_video",
    "to_float_video",
    "to_uint8_frames",
]


def check_video(
    video: Tensor, name: str = "video", *, channels: int | None = None, atol: float = 1e-3
) -> Tensor:
    """Validate a model-side video: float ``[B, T, C, H, W]`` with values in ``[-1, 1]``.

    Raises ``TypeError``/``ValueError`` naming the argument, what was expected and what came.
    """
    if not isinstance(video, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(video).__name__}")
    if video.ndim != 5:
        raise ValueError(
            f"{name} must be [B, T, C, H, W] in [-1, 1]; got shape {tuple(video.shape)}"
        )
    if not video.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor in [-1, 1]; got {video.dtype} "
            "(convert stored uint8 frames with wmkit.core.video.to_float_video)"
        )
    if channels is not None and video.shape[2] != channels:
        raise ValueError(
            f"{name} must have {channels} channels at dim 2 ([B, T, C, H, W]); "
            f"got shape {tuple(video.shape)}"
        )
    if video.numel():
        lo, hi = video.detach().aminmax()
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf")
        if lo < -1 - atol or hi > 1 + atol:
            raise ValueError(
                f"{name} must be in [-1, 1]; got values in [{lo.item():.4g}, {hi.item():.4g}]"
            )
    return video


def check_frames(frames: np.ndarray | Tensor, name: str = "frames") -> None:
    """Validate stored frames: ``uint8 [T, H, W, C]`` or ``[B, T, H, W, C]`` with C in {1, 3}."""
    dtype = frames.dtype
    is_u8 = dtype == np.uint8 if isinstance(frames, np.ndarray) else dtype == torch.uint8
    if frames.ndim not in (4, 5) or frames.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} must be uint8 [T, H, W, C] or [B, T, H, W, C] with C in (1, 3); "
            f"got shape {tuple(frames.shape)}"
        )
    if not is_u8:
        raise TypeError(f"{name} must be uint8; got {dtype}")


def to_float_video(frames: np.ndarray | Tensor, device: torch.device | str | None = None) -> Tensor:
    """``uint8 [T, H, W, C]`` or ``[B, T, H, W, C]`` → ``float32 [B, T, C, H, W]`` in [-1, 1]."""
    check_frames(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if device is not None:
        x = x.to(device)
    if x.ndim == 4:
        x = x.unsqueeze(0)
    x = rearrange(x, "b t h w c -> b t c h w")
    return x.float().div(127.5).sub(1.0)


def to_uint8_frames(video: Tensor) -> Tensor:
    """``float [B, T, C, H, W]`` in [-1, 1] → ``uint8 [B, T, H, W, C]`` (values clamped)."""
    if not isinstance(video, Tensor) or video.ndim != 5 or not video.is_floating_point():
        raise ValueError(
            "video must be a float tensor [B, T, C, H, W] in [-1, 1]; got "
            f"{getattr(video, 'dtype', type(video).__name__)} of shape "
            f"{tuple(getattr(video, 'shape', ()))}"
        )
    x = video.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return rearrange(x, "b t c h w -> b t h w c").cpu()


def resize_video(video: Tensor, size: int | tuple[int, int], mode: str = "area") -> Tensor:
    """Resize every frame of ``[B, T, C, H, W]`` to ``size`` (``(H, W)`` or square).

    ``area`` averages when shrinking (no aliasing); ``bilinear`` or ``nearest`` also work.
    """
    check_video(video)
    h, w = (size, size) if isinstance(size, int) else size
    b = video.shape[0]
    x = rearrange(video, "b t c h w -> (b t) c h w")
    kwargs = {"antialias": True, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(x, size=(h, w), mode=mode, **kwargs)
    return rearrange(x, "(b t) c h w -> b t c h w", b=b).clamp(-1, 1)


def frame_grid(
    videos: Sequence[Tensor], pad: int = 2, pad_value: float = 1.0, batch_index: int = 0
) -> Tensor:
    """Lay videos side by side (columns) for comparison → ``uint8 [T, H, W', C]``.

    Each entry is ``float [B, T, C, H, W]`` in [-1, 1] (the ``batch_index`` sample is used) and
    all must share ``T, C, H, W``: e.g. ``frame_grid([real, predicted, copy_last])``.
    Frames are separated by ``pad`` pixels of ``pad_value``.
    """
    if not videos:
        raise ValueError("frame_grid needs at least one video")
    shape = None
    columns = []
    for i, v in enumerate(videos):
        check_video(v, name=f"videos[{i}]")
        if shape is None:
            shape = tuple(v.shape[1:])
        elif tuple(v.shape[1:]) != shape:
            raise ValueError(
                f"videos[{i}] has [T, C, H, W] = {tuple(v.shape[1:])}; videos[0] has {shape}"
            )
        columns.append(v[batch_index].float().cpu())
    t, c, h, _ = shape  # type: ignore[misc]
    sep = torch.full((t, c, h, pad), pad_value)
    parts: list[Tensor] = []
    for i, col in enumerate(columns):
        if i:
            parts.append(sep)
        parts.append(col)
    grid = torch.cat(parts, dim=-1).unsqueeze(0)  # [1, T, C, H, W']
    return to_uint8_frames(grid)[0]
