"""What a :class:`~wmkit.diffusion_world.DiffusionWorldModel`'s network sees: pixels, or the
continuous latents of a frozen ``wmkit.core.Tokenizer`` (scaled by ``latent_scale``, the way
latent diffusion scales a VAE's latents to unit variance; Rombach et al. 2022).

A per-frame tokenizer gives one latent per frame; with ``frames_per_step = k`` the tokenizer's
temporal compression must be ``k`` and a clip of ``1 + n·k`` frames gives ``1 + n`` latents
(:mod:`~wmkit.diffusion_world.latent_steps`).
"""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import Tensor, nn

from wmkit.core import Tokenizer, check_video, follow_device

__all__ = ["ModelSpaceMixin", "check_tokenizer"]


class ModelSpaceMixin:
    """Encoding and decoding of a :class:`~wmkit.diffusion_world.DiffusionWorldModel`, which
    provides ``channels``, ``image_size``, ``latent_scale``, ``frames_per_step``, ``residual``,
    ``denoiser`` and ``sampler``; the tokenizer is held in ``_tokenizer``."""

    _tokenizer: Tokenizer | None
    channels: int
    image_size: int
    latent_scale: float
    frames_per_step: int
    residual: bool
    denoiser: Any
    sampler: Any

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Tokenizer | None) -> Self:
        """Work on ``tokenizer``'s latents (frozen; ``None``: on pixels). Returns self.

        The tokenizer is not a submodule (its weights are not in the model's state dict), but
        ``save_pretrained`` saves it beside the model (``tokenizer/``), so it must have a
        ``save_pretrained`` of its own for the model to be saved. Predicted samples are
        clipped to [-1, 1] on pixels only, so attaching a tokenizer turns that clipping off
        (as a ``tokenizer=`` path does), and ``None`` turns it back on.
        """
        if tokenizer is not None:
            check_tokenizer(tokenizer, self.channels, self.frames_per_step)
            if isinstance(tokenizer, nn.Module):
                tokenizer.eval().requires_grad_(False)
        # not registered as a submodule: the tokenizer is frozen and saved in its own directory
        object.__setattr__(self, "_tokenizer", tokenizer)
        clip = tokenizer is None and not self.residual
        self.denoiser.objective.set_clip_sample(clip)
        scheduler = getattr(self.sampler, "scheduler", None)
        if scheduler is not None and "clip_sample" in scheduler.config:
            scheduler.register_to_config(clip_sample=clip)
        return self

    def encode(self, video: Tensor) -> Tensor:
        """Video ``[B, T, C, H, W]`` in [-1, 1] → what the network sees ``[B, T, c, h, w]``."""
        check_video(video, "video")
        if self._tokenizer is None:
            if self.frames_per_step > 1:
                raise ValueError(
                    f"frames_per_step={self.frames_per_step} runs on a tokenizer's latents: "
                    "attach one (tokenizer= or set_tokenizer)"
                )
            x = video
        else:
            follow_device(self._tokenizer, video.device)  # FSDP bypasses _apply
            with torch.no_grad():
                x = self._tokenizer.encode(video).values.float() * self.latent_scale
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(x.shape[2:]) != expected:
            raise ValueError(
                f"video encodes to frames of shape {tuple(x.shape[2:])} but the model expects "
                f"{expected} (channels, image_size, image_size)"
            )
        return x

    def decode(self, x: Tensor) -> Tensor:
        """Model-space frames ``[B, T, c, h, w]`` → video in [-1, 1]."""
        return self._decode_raw(x).clamp(-1, 1)

    def _decode_raw(self, x: Tensor) -> Tensor:
        if self._tokenizer is None:
            return x
        follow_device(self._tokenizer, x.device)
        with torch.no_grad():
            return self._tokenizer.decode(x / self.latent_scale).float()

    def _encoded(self, frames: Tensor, latents: Tensor | None) -> Tensor:
        """``encode(frames)``, or ``latents`` when given (checked against the frames)."""
        if latents is None:
            return self.encode(frames)
        b, t = frames.shape[:2]
        expected = (b, 1 + (t - 1) // self.frames_per_step, self.channels, *[self.image_size] * 2)
        if tuple(latents.shape) != expected:
            raise ValueError(
                f"latents must be encode(frames)'s {expected}; got {tuple(latents.shape)}"
            )
        return latents


def check_tokenizer(tokenizer: Tokenizer, channels: int, k: int) -> None:
    """A tokenizer a diffusion world model can run on: continuous, one latent per frame
    (``k = 1``) or per latent step of ``k`` frames, ``channels`` latent channels."""
    if not isinstance(tokenizer, Tokenizer) or tokenizer.kind != "continuous":
        raise ValueError(
            "tokenizer must be a continuous wmkit.core.Tokenizer; got "
            f"{type(tokenizer).__name__} (kind {getattr(tokenizer, 'kind', None)!r})"
        )
    if k == 1 and tokenizer.temporal_compression != 1:
        raise ValueError(
            "diffusion world models step one frame at a time: the tokenizer's "
            f"temporal_compression must be 1; got {tokenizer.temporal_compression} (set "
            "frames_per_step to it for latent steps of several frames)"
        )
    if tokenizer.temporal_compression != k:
        raise ValueError(
            f"frames_per_step={k}: the tokenizer's temporal_compression must be {k} (one "
            f"latent per latent step); got {tokenizer.temporal_compression}"
        )
    if tokenizer.latent_channels != channels:
        raise ValueError(
            f"tokenizer has {tokenizer.latent_channels} latent channels; channels={channels}"
        )
