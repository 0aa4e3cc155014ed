"""What goes into and comes out of :class:`~wmkit.tokenizers.ivideogpt_vq.IVideoGPTTokenizer`
besides ``Latents``: the checks on its arguments and on the ``[0, 1]`` pixels, frame size and
id grids of iVideoGPT's own interface (Wu et al. 2024, arXiv:2405.15223), and the dataclasses
its ``encode_unit``, ``decode_context`` and ``forward`` return.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = [
    "DecodedContext",
    "IVideoGPTCodes",
    "IVideoGPTTokenizerOutput",
    "check_arguments",
    "check_ids",
    "check_size",
    "check_unit_pixels",
]


@dataclass
class IVideoGPTCodes:
    """What :meth:`IVideoGPTTokenizer.encode_unit` returns (model order: context first).

    Attributes:
        context_ids: ``long [B, T0, h, w]``.
        future_ids: ``long [B, F, h', w']``, raw dynamics code indices.
        prequant_context: the context VQ's input ``quant_conv(encoder(x))`` ``[B, T0, D, h, w]``.
        prequant_future: the dynamics VQ's input, ``quant_linear`` of each patch,
            ``[B, F, h'·w', D]``.
    """

    context_ids: Tensor
    future_ids: Tensor
    prequant_context: Tensor
    prequant_future: Tensor


@dataclass
class DecodedContext:
    """Context frames decoded once (:meth:`IVideoGPTTokenizer.decode_context`).

    Attributes:
        frames: ``[0, 1]``-scale frames ``[B, T0, C, H, W]``, unclamped.
        features: the plain decoder's bottleneck and up-block outputs of those frames, each
            ``[B, T0, C_i, H_i, W_i]``: what future frames cross-attend to.
    """

    frames: Tensor
    features: list[Tensor]


@dataclass
class IVideoGPTTokenizerOutput:
    """What :meth:`IVideoGPTTokenizer.forward` returns for training.

    Attributes:
        reconstruction: ``[B, T, C, H, W]`` in wmkit's ``[-1, 1]`` scale, not clamped.
        context_ids: ``long [B, T0, h, w]``.
        future_ids: ``long [B, F, h', w']``.
        loss: both codebooks' VQ losses (codebook + ``beta``·commitment), summed.
        logs: the two VQ losses apart.
    """

    reconstruction: Tensor
    context_ids: Tensor
    future_ids: Tensor
    loss: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


def check_arguments(
    widths: list[int], groups: int, resolution: int, patch_size: int, context_length: int
) -> int:
    """Raise ``ValueError`` naming the first bad ``IVideoGPTTokenizer`` argument; return
    the spatial compression ``s = 2^(levels-1)``."""
    if not widths or min(widths) < 1:
        raise ValueError(f"block_out_channels must be positive widths; got {widths}")
    if any(w % groups for w in widths):
        raise ValueError(
            f"every block_out_channels entry must be divisible by norm_num_groups "
            f"({groups}); got {widths}"
        )
    s = 2 ** (len(widths) - 1)
    if resolution % (s * patch_size) or patch_size < 1:
        raise ValueError(
            f"resolution ({resolution}) must be a multiple of 2^(levels-1)·patch_size = "
            f"{s}·{patch_size}"
        )
    if context_length < 1:
        raise ValueError(f"context_length must be >= 1; got {context_length}")
    return s


def check_size(height: int, width: int, resolution: int) -> None:
    """Frames must be ``resolution × resolution`` (the position embeddings are sized for it)."""
    if (height, width) != (resolution, resolution):
        raise ValueError(
            f"video frames must be {resolution}x{resolution} (the tokenizer's "
            f"resolution); got {height}x{width}"
        )


def check_unit_pixels(pixels: Tensor, name: str, channels: int, resolution: int) -> None:
    """``pixels`` must be iVideoGPT's float ``[B, T, C, H, W]`` in ``[0, 1]``."""
    if not isinstance(pixels, Tensor) or pixels.ndim != 5 or not pixels.is_floating_point():
        raise ValueError(
            f"{name} must be float [B, T, C, H, W]; got "
            + (f"{pixels.dtype} {tuple(pixels.shape)}" if isinstance(pixels, Tensor) else "")
            + type(pixels).__name__
        )
    if pixels.shape[2] != channels:
        raise ValueError(
            f"{name} must have {channels} channels at dim 2; got {tuple(pixels.shape)}"
        )
    check_size(pixels.shape[3], pixels.shape[4], resolution)
    if pixels.numel():
        lo, hi = pixels.detach().aminmax()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"{name} must be in [0, 1] (iVideoGPT's pixels; encode takes wmkit's "
                f"[-1, 1] video); got values in [{lo.item():.4g}, {hi.item():.4g}]"
            )


def check_ids(ids: Tensor, name: str, side: int, batch: int | None = None) -> None:
    """``ids`` must be an id grid ``long [B, T, side, side]`` (``B = batch`` when given)."""
    b = "B" if batch is None else str(batch)
    ok = isinstance(ids, Tensor) and ids.ndim == 4 and ids.shape[2:] == (side, side)
    if not ok or (batch is not None and ids.shape[0] != batch):
        got = str(tuple(ids.shape)) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be long [{b}, T, {side}, {side}]; got {got}")
