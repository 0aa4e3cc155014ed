"""Residual future frames of :class:`~wmkit.tokenizers.compressive.CompressiveTokenizer`
(``future_residual=True``; our addition to iVideoGPT, Wu et al. 2024, arXiv:2405.15223).

Each future frame is decoded as an **anchor** frame *in pixels* plus the future decoder's
output plus :func:`anchor_refine`'s output, whose last convolutions start at zero, so an
untrained tokenizer reproduces copy-last-frame exactly and future tokens only have to
describe the change. The anchor is the latest context frame before the first future frame
(:func:`anchor_index`): the real frame whenever it is known (``encode`` keeps it in
``Latents.context_frames``; a world model passes its observed frames,
:func:`context_anchor` checks them), else the context tokens' reconstruction. In iVideoGPT
the future decoder must redraw the whole frame through cross-attention to the context
decoder's features, so static content is limited by the context tokens' fidelity; on
Crafter, where most steps change a few pixels, that costs more than the tokens gain.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.video import check_video
from wmkit.tokenizers.causal_conv import FrameConv2d

__all__ = ["add_change", "anchor_index", "anchor_refine", "context_anchor"]


def anchor_index(ctx: tuple[int, ...], fut: tuple[int, ...]) -> int:
    """Index into ``ctx`` of the residual anchor: the latest context frame before the
    first future frame (else the last context frame)."""
    before = [i for i, c in enumerate(ctx) if c < fut[0]]
    return max(before, key=lambda i: ctx[i]) if before else len(ctx) - 1


def anchor_refine(width: int, in_channels: int) -> nn.Sequential:
    """A full-resolution path over the future decoder's last hidden map (``width``
    channels) and the anchor's pixels (7x7 receptive field), so a change such as the whole
    view shifting by a few pixels is a local operation."""
    return nn.Sequential(
        FrameConv2d(width + in_channels, width, 3),
        nn.SiLU(),
        FrameConv2d(width, width, 3),
        nn.SiLU(),
        FrameConv2d(width, in_channels, 3),
    )


def add_change(
    future: Tensor, hidden: Tensor, context: Tensor, j: int, refine: nn.Module
) -> Tensor:
    """Residual future frames ``[B, C, Tf, H, W]``: the anchor ``context[:, :, j]`` (context
    frames ``[B, C, T0, H, W]``) plus the future decoder's output ``future`` plus ``refine``
    (:func:`anchor_refine`) over the decoder's last hidden map ``hidden`` and the anchor."""
    anchor = context[:, :, j : j + 1].expand(-1, -1, future.shape[2], -1, -1)
    change = refine(torch.cat([hidden, anchor], dim=1))
    return anchor + future + change


def context_anchor(frames: Tensor, context_ids: Tensor, in_channels: int) -> Tensor:
    """Check ``Latents.context_frames`` ``[B, T0, C, H, W]`` against the context ids
    ``[B, T0, h, w]``; return them as ``[B, C, T0, H, W]``."""
    check_video(frames, "latents.context_frames", channels=in_channels)
    if frames.shape[:2] != context_ids.shape[:2]:
        raise ValueError(
            f"latents.context_frames must be [B, T0, C, H, W] with B, T0 = "
            f"{tuple(context_ids.shape[:2])}; got {tuple(frames.shape)}"
        )
    return rearrange(frames, "b t c h w -> b c t h w")
