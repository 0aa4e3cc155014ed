"""Comparisons the conformance suite makes: outputs equal (bit-identical or within a
tolerance) and generated video of the right shape, dtype and range."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["assert_same", "check_video_out"]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested tensors of an output (tensor, dataclass, dict, list) keyed by path."""
    if isinstance(obj, Tensor):
        return {prefix or "output": obj}
    if is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in fields(obj):
            out.update(_flatten(getattr(obj, f.name), f"{prefix}.{f.name}".lstrip(".")))
        return out
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}".lstrip(".")))
        return out
    if isinstance(obj, list | tuple):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix or "output": obj}


def assert_same(a: Any, b: Any, atol: float = 0.0, what: str = "outputs") -> None:
    """Assert two outputs (tensors, dataclasses, dicts, lists) are equal: bit-identical when
    ``atol`` is 0, else within ``atol``."""
    fa, fb = _flatten(a), _flatten(b)
    if fa.keys() != fb.keys():
        raise AssertionError(f"{what} differ in structure: {sorted(fa)} vs {sorted(fb)}")
    for key in fa:
        x, y = fa[key], fb[key]
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                raise AssertionError(
                    f"{what}: {key} is {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}"
                )
            if atol == 0.0:
                if not torch.equal(x, y):
                    diff = (x.double() - y.double()).abs().max().item()
                    raise AssertionError(f"{what}: {key} not bit-identical (max diff {diff:.3g})")
            elif not torch.allclose(x.double(), y.double(), atol=atol, rtol=0):
                diff = (x.double() - y.double()).abs().max().item()
                raise AssertionError(f"{what}: {key} differs by {diff:.3g} > {atol:g}")
        elif x != y and not (isinstance(x, Tensor) or isinstance(y, Tensor)):
            raise AssertionError(f"{what}: {key} is {x!r} vs {y!r}")


def check_video_out(video: Tensor, shape: tuple[int, ...], what: str) -> None:
    """``video`` is a float tensor of ``shape`` in [-1, 1] (``what`` names it in errors)."""
    if not isinstance(video, Tensor):
        raise AssertionError(f"{what} must be a Tensor; got {type(video).__name__}")
    if tuple(video.shape) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(video.shape)}; expected {tuple(shape)}")
    if not video.is_floating_point():
        raise AssertionError(f"{what} must be float; got {video.dtype}")
    if video.numel() and (video.min() < -1 - 1e-4 or video.max() > 1 + 1e-4):
        raise AssertionError(
            f"{what} must be in [-1, 1]; got [{video.min().item():.3g}, {video.max().item():.3g}]"
        )
