"""`FrameCodec`: frames ↔ token ids through a world model's frozen discrete tokenizer.

Per frame (temporal compression 1), every frame is one grid of ids. With a *compressive*
tokenizer (iVideoGPT, Wu et al. 2024: ``future_tokens_shape`` and ``future_vocab_size``), the
first ``T0`` frames of a clip are context frames with ``N`` tokens each and the later ones
future frames with ``n < N`` tokens, each future frame decoded together with the context
tokens and the observed context frames (``Latents.context_frames``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from wmkit.core import Latents, Tokenizer, check_video, follow_device, load_pretrained

__all__ = ["FrameCodec", "load_tokenizer"]


class FrameCodec:
    """Encode and decode frames of ``frame_size`` with a loaded ``tokenizer`` (frozen).

    Args:
        tokenizer: a discrete per-frame tokenizer (``load_tokenizer``).
        frame_size: ``(H, W)`` of the frames.
    """

    def __init__(self, tokenizer: Any, frame_size: tuple[int, int]) -> None:
        self.tokenizer = tokenizer
        self.frame_size = frame_size
        self.compressive = hasattr(tokenizer, "future_tokens_shape")

    def check(self, frames: Tensor, name: str) -> None:
        check_video(frames, name)
        if tuple(frames.shape[-2:]) != self.frame_size:
            raise ValueError(
                f"{name} must be {self.frame_size[0]}x{self.frame_size[1]} (frame_size); got "
                f"{frames.shape[-2]}x{frames.shape[-1]}"
            )

    def encode(self, frames: Tensor, name: str = "frames") -> Tensor:
        """Frames ``[B, T, C, H, W]`` in [-1, 1] → ids ``[B, T, h, w]`` (compressive: each
        frame as a context frame)."""
        self.check(frames, name)
        follow_device(self.tokenizer, frames.device)  # FSDP bypasses _apply
        with torch.no_grad():
            if self.compressive:
                return self.tokenizer.encode(frames, context_frames=frames.shape[1]).values
            latents = self.tokenizer.encode(frames)
        if latents.future is not None:
            raise ValueError(
                "the tokenizer returned future tokens but has no future_tokens_shape; "
                "compressive tokenizers need both"
            )
        return latents.values

    def encode_clip(self, frames: Tensor, t0: int, name: str = "frames") -> tuple[Tensor, Tensor]:
        """Compressive: a clip ``[B, T, C, H, W]`` → ``(context [B, T0, N-grid], future
        [B, T - T0, n-grid])``."""
        self.check(frames, name)
        follow_device(self.tokenizer, frames.device)  # FSDP bypasses _apply
        if frames.shape[1] <= t0:
            raise ValueError(
                f"{name} needs more than context_frames = {t0} frames; got {frames.shape[1]}"
            )
        with torch.no_grad():
            latents = self.tokenizer.encode(frames, context_frames=t0)
        return latents.values, latents.future

    def decode(
        self,
        grid: Tensor,
        context: list[Tensor] | None = None,
        context_frames: Tensor | None = None,
    ) -> Tensor:
        """A frame's ids ``[B, h, w]`` → frame ``[B, C, H, W]`` in [-1, 1]; compressive: a future
        frame's, decoded against the ``context`` ids and pixels."""
        if not self.compressive:
            return self.tokenizer.decode(grid[:, None]).clamp(-1, 1)[:, 0]
        latents = Latents(
            values=torch.stack(context, dim=1),  # type: ignore[arg-type]
            kind="discrete",
            future=grid[:, None],
            context_indices=tuple(range(len(context))),  # type: ignore[arg-type]
            context_frames=context_frames,
        )
        return self.tokenizer.decode(latents)[:, -1].clamp(-1, 1)


def load_tokenizer(tokenizer: str | os.PathLike | nn.Module, latent_steps: bool = False) -> Any:
    """``tokenizer`` (or the directory it was saved to), checked to be discrete and per-frame,
    and frozen. ``latent_steps``: a causal tokenizer with temporal compression ``k > 1`` is
    accepted too if it is not compressive (one grid of ids per latent; the model's sequence
    steps are then latent steps, :mod:`wmkit.ar_world.latent_steps`)."""
    if isinstance(tokenizer, str | os.PathLike):
        tokenizer = load_pretrained(tokenizer)
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"tokenizer must satisfy wmkit.core.Tokenizer (or be its directory); got "
            f"{type(tokenizer).__name__}"
        )
    if tokenizer.kind != "discrete" or not tokenizer.vocab_size:
        raise ValueError(
            f"tokenizer must be discrete with a vocab_size; got kind {tokenizer.kind!r}"
        )
    k = tokenizer.temporal_compression
    if k != 1 and not latent_steps:
        raise ValueError(
            f"this world model needs a per-frame tokenizer (temporal_compression 1); got {k}"
        )
    if k != 1 and hasattr(tokenizer, "future_tokens_shape"):
        raise ValueError(
            f"a compressive tokenizer (context/future tokens) with temporal_compression {k} is "
            "not supported: use a per-frame compressive tokenizer or a per-latent one"
        )
    if isinstance(tokenizer, nn.Module):
        tokenizer.requires_grad_(False).eval()
    return tokenizer
