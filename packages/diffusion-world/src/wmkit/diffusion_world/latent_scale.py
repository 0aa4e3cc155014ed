"""``latent_change_scale``: the ``latent_scale`` that puts a tokenizer's latent frame changes
on the scale of pixel frame changes.

With ``residual=True`` the diffusion runs on frame changes, and ``sigma_data`` is their
standard deviation (0.1 suits 32² Crafter pixels). A tokenizer's latents change by a
different amount per frame; multiplying them by this factor makes the latent changes as
large as the pixel changes, so a ``sigma_data`` tuned on pixels carries over (the role of
Stable Diffusion's latent scale factor, measured on changes rather than on frames).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from wmkit.core import Tokenizer, check_video

__all__ = ["latent_change_scale"]


@torch.no_grad()
def latent_change_scale(tokenizer: Tokenizer, videos: Iterable[Tensor], digits: int = 3) -> float:
    """``std(pixel changes) / std(latent changes)`` over ``videos`` (each ``float [B, T, C, H,
    W]`` in [-1, 1] with ``T >= 2``), rounded to ``digits`` significant digits."""
    if tokenizer.kind != "continuous":
        raise ValueError(f"latent_change_scale needs a continuous tokenizer; got {tokenizer.kind}")
    pixel, latent = [], []
    for video in videos:
        check_video(video, "video")
        if video.shape[1] < 2:
            raise ValueError(f"videos need >= 2 frames to have changes; got {video.shape[1]}")
        z = tokenizer.encode(video).values.float()
        pixel.append((video[:, 1:] - video[:, :-1]).flatten().float())
        latent.append((z[:, 1:] - z[:, :-1]).flatten())
    if not pixel:
        raise ValueError("latent_change_scale got no videos")
    latent_std = torch.cat(latent).std()
    if latent_std <= 0:
        raise ValueError("the latents never change over these videos: no scale to measure")
    return float(f"{(torch.cat(pixel).std() / latent_std).item():.{digits}g}")
