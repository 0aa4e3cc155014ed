"""Time-causal convolutions with a streaming cache of past frames.

A convolution is *causal in time* when output frame ``i`` sees only input frames ``<= i``:
the temporal padding goes entirely on the past side (VidTok, Tang et al. 2024, §3.1;
MAGVIT-v2). Because nothing looks ahead, a long video can be processed chunk by chunk:
each module keeps the last ``time_pad`` input frames of the previous chunk and uses them
instead of the zero padding, which gives exactly the full-pass result in memory bounded by
the chunk size (:func:`streaming`).

The past of the first chunk (or of a whole pass) is padded with zeros (VidTok v1.0) or with
copies of the first frame (VidTok v1.1); :func:`set_past_padding` chooses. ``cache_offset``
keeps the last frames of a chunk out of the cache: VidTok v1.1 decodes long videos in
chunks that overlap the next one by a latent frame, whose output is dropped, and the next
chunk must not see it as its past.

Layout: these modules work on ``[B, C, T, H, W]`` (channels first, as ``nn.Conv3d``);
public tokenizer boundaries use ``[B, T, C, H, W]`` and rearrange.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "CausalConv3d",
    "FrameConv2d",
    "PastPadding",
    "StreamingModule",
    "is_streaming",
    "set_past_padding",
    "streaming",
]

#: How the first chunk's past is padded: ``"zeros"`` or copies of the ``"first_frame"``.
PastPadding = Literal["zeros", "first_frame"]


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class StreamingModule(nn.Module):
    """A module that pads the past of its time axis (dim 2) from a cache while streaming.

    Subclasses call :meth:`pad_past` on their input. Outside :func:`streaming` the past is
    padded by ``past_padding`` (one full pass); inside, the first chunk is padded the same
    way and every later chunk is prefixed by the last ``time_pad`` frames the module saw,
    ignoring the chunk's last ``cache_offset`` frames.
    """

    time_pad: int = 0
    past_padding: PastPadding = "zeros"
    cache_offset: int = 0

    def __init__(self) -> None:
        super().__init__()
        self._streaming = False
        self._cache: Tensor | None = None

    @property
    def first_chunk(self) -> bool:
        """Whether the next input starts the video (no cached past)."""
        return not (self._streaming and self._cache is not None)

    def pad_past(self, x: Tensor) -> Tensor:
        """``[B, C, T, H, W]`` → ``[B, C, time_pad + T, H, W]``."""
        p = self.time_pad
        if p == 0:
            return x
        if not self.first_chunk:
            past = self._cache
        elif self.past_padding == "first_frame":
            past = x[:, :, :1].expand(-1, -1, p, -1, -1)
        else:
            past = x.new_zeros((*x.shape[:2], p, *x.shape[3:]))
        x = torch.cat([past, x], dim=2)
        if self._streaming:
            kept = x[:, :, : x.shape[2] - self.cache_offset]
            self._cache = kept[:, :, -p:].detach()
        return x

    def _set_streaming(self, on: bool) -> None:
        self._streaming = on
        self._cache = None


def is_streaming(module: nn.Module) -> bool:
    """Whether any causal sub-module of ``module`` is in streaming mode."""
    return any(isinstance(m, StreamingModule) and m._streaming for m in module.modules())


def set_past_padding(module: nn.Module, mode: PastPadding) -> None:
    """Pad the first chunk's past of every :class:`StreamingModule` in ``module`` with
    ``"zeros"`` (VidTok v1.0, wmkit's default) or copies of the ``"first_frame"`` (VidTok
    v1.1)."""
    if mode not in ("zeros", "first_frame"):
        raise ValueError(f"past padding must be 'zeros' or 'first_frame'; got {mode!r}")
    for m in module.modules():
        if isinstance(m, StreamingModule):
            m.past_padding = mode


@contextmanager
def streaming(module: nn.Module) -> Iterator[nn.Module]:
    """Put every :class:`StreamingModule` inside ``module`` in streaming mode (fresh caches).

    Feed the chunks in order inside the ``with`` block; caches are dropped on exit.
    Raises ``RuntimeError`` if ``module`` is already streaming (two interleaved streams
    through the same modules would corrupt each other's caches).
    """
    if is_streaming(module):
        raise RuntimeError(f"{type(module).__name__} is already streaming; finish that stream")
    parts = [m for m in module.modules() if isinstance(m, StreamingModule)]
    for m in parts:
        m._set_streaming(True)
    try:
        yield module
    finally:
        for m in parts:
            m._set_streaming(False)


class CausalConv3d(StreamingModule):
    """``nn.Conv3d`` causal in time and "same"-padded in space.

    Temporal padding is ``dilation·(k_t - 1) + 1 - stride_t`` frames, all in the past, so
    with temporal stride ``s`` output ``i`` depends on inputs ``<= s·i + s - 1``: a chunk
    whose length is a multiple of ``s`` streams exactly.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``k`` or ``(k_t, k_h, k_w)``; spatial sizes must be odd.
        stride: ``s`` or ``(s_t, s_h, s_w)``; ``k_t >= s_t``.
        dilation: temporal dilation.
        bias: add a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        st, sh, sw = _triple(stride)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"kernel_size must be odd in space; got {(kt, kh, kw)}")
        if kt < st:
            raise ValueError(f"temporal kernel {kt} must be >= temporal stride {st}")
        self.time_pad = dilation * (kt - 1) + 1 - st
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (kt, kh, kw),
            stride=(st, sh, sw),
            padding=(0, kh // 2, kw // 2),
            dilation=(dilation, 1, 1),
            bias=bias,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad_past(x))  # [B, C', T', H', W']


class FrameConv2d(nn.Module):
    """``nn.Conv2d`` applied to every frame of ``[B, C, T, H, W]`` (no temporal mixing).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd: "same" padding unless ``padding`` is given).
        stride: spatial stride.
        padding: spatial padding (default ``kernel_size // 2``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad)

    def forward(self, x: Tensor, pre_pad: tuple[int, int, int, int] | None = None) -> Tensor:
        b = x.shape[0]
        y = rearrange(x, "b c t h w -> (b t) c h w")
        if pre_pad is not None:
            y = F.pad(y, pre_pad)
        y = self.conv(y)  # [(B T), C', H', W']
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)
