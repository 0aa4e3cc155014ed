"""Chunked and step-by-step encode/decode of :class:`~wmkit.tokenizers.vidtok.VidTokTokenizer`.

VidTok's networks are causal in time (:mod:`wmkit.tokenizers.causal_conv`): each temporal
layer needs only the last few frames it saw. Two ways to use that:

- ``encode_chunks`` / ``decode_chunks``: one generator walks a long video in order, the
  modules keeping their caches between chunks (memory bounded by the chunk size);
- ``decode_next`` (:class:`wmkit.core.StreamingDecoder`): the caches travel in an immutable
  :class:`VidTokStream` value between calls, so a world model decodes each latent step once,
  keeps the stream in its state and can fork it; no module state survives a call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wmkit.core.protocols import Latents
from wmkit.core.video import check_video
from wmkit.tokenizers.causal_conv import StreamingModule, streaming

__all__ = ["VidTokStream", "VidTokStreamingMixin"]


@dataclass(frozen=True)
class VidTokStream:
    """What :meth:`VidTokStreamingMixin.decode_next` carries between latent steps.

    Attributes:
        caches: the past frames each causal decoder module keeps (``[B, C, p, h', w']`` at its
            own resolution and frame rate; ``None`` where a module keeps none), in the order
            of ``decoder.modules()``. Never written to after the call that made them.
        latent_frames: latent frames decoded so far.
    """

    caches: tuple[Tensor | None, ...]
    latent_frames: int


def _streaming_parts(module: nn.Module) -> list[StreamingModule]:
    return [m for m in module.modules() if isinstance(m, StreamingModule)]


class VidTokStreamingMixin:
    """``split_frames``, ``encode_chunks``, ``decode_chunks`` and ``decode_next`` for
    :class:`~wmkit.tokenizers.vidtok.VidTokTokenizer` (which supplies ``t``, ``encoder``,
    ``decoder`` and the encode/decode internals)."""

    def split_frames(self, video: Tensor, latents_per_chunk: int = 1) -> list[Tensor]:
        """Cut ``[B, T, C, H, W]`` into chunks for :meth:`encode_chunks`: the first holds
        ``1 + (n - 1)·t`` frames, the others ``n·t`` (the last may be shorter)."""
        n = self.t * latents_per_chunk
        first = 1 + (latents_per_chunk - 1) * self.t
        return [video[:, :first], *video[:, first:].split(n, dim=1)]

    @torch.no_grad()  # as a decorator it wraps each step: the caller's grad mode is untouched
    def encode_chunks(self, chunks: Iterable[Tensor]) -> Iterator[Latents]:
        """Encode a long video chunk by chunk (first chunk ``1 + k·t`` frames, the rest
        multiples of ``t``), yielding each chunk's ``Latents``. Concatenated along time they
        equal ``encode`` of the whole video; memory depends on the chunk size only."""
        with streaming(self.encoder):
            for i, chunk in enumerate(chunks):
                check_video(chunk, name=f"chunks[{i}]", channels=self.in_channels)
                n = chunk.shape[1]
                if (i == 0 and (n - 1) % self.t) or (i > 0 and (n == 0 or n % self.t)):
                    rule = "1 + k·t" if i == 0 else "a positive multiple of t"
                    raise ValueError(f"chunks[{i}] must have {rule} frames (t={self.t}); got {n}")
                h = self._encode_moments(chunk, first=i == 0)
                yield Latents(values=self._latent_values(h), kind=self._kind)

    @torch.no_grad()
    def decode_chunks(self, chunks: Iterable[Latents | Tensor]) -> Iterator[Tensor]:
        """Decode latents chunk by chunk (any number of latent frames per chunk), yielding
        the video of each chunk (``1 + t·(n - 1)`` frames for the first, ``t·n`` after).

        With ``temporal_upsample="nearest"`` the decoder is causal and the chunks
        concatenate to ``decode`` of all latents. With ``"trilinear"`` it looks one latent
        frame ahead, so this reproduces VidTok v1.1's long-video decode
        (``use_tiling``, ``use_overlap``): each chunk but the last is decoded together with
        the next chunk's first latent frame, whose ``t`` frames are dropped and kept out of
        the causal caches; a chunk's video is yielded once the next chunk has arrived. The
        result depends on where the chunks are cut (VidTok cuts after the first latent, then
        every ``16 / t``) and differs slightly from the whole-clip ``decode``.
        """
        overlap = self.temporal_upsample == "trilinear"
        with streaming(self.decoder):
            self.decoder.set_cache_offset(1 if overlap else 0)
            try:
                pending: Tensor | None = None
                for i, chunk in enumerate(chunks):
                    z = self._to_codes(chunk)
                    if not overlap:
                        yield self._decode_codes(z, first=i == 0).clamp(-1, 1)
                        continue
                    if pending is not None:
                        yield self._decode_overlapped(pending, z[:, :, :1], first=i == 1)
                    pending = z
                if pending is not None:
                    yield self._decode_overlapped(pending, None, first=i == 0)
            finally:
                self.decoder.set_cache_offset(0)

    def _decode_overlapped(self, z: Tensor, ahead: Tensor | None, first: bool) -> Tensor:
        """Decode ``z`` with one latent frame of look-ahead whose output is dropped."""
        if ahead is None:
            return self._decode_codes(z, first=first).clamp(-1, 1)
        x = self._decode_codes(torch.cat([z, ahead], dim=2), first=first)
        return x[:, : -self.t].clamp(-1, 1)

    def decode_next(
        self, latents: Latents | Tensor, stream: VidTokStream | None = None
    ) -> tuple[Tensor, VidTokStream]:
        """Decode the next ``n >= 1`` latent frames (KL latents ``[B, n, C, h, w]``, FSQ ids
        ``long [B, n, h, w]`` or codes) after those ``stream`` has seen (``None``: they start
        the video) → ``(frames [B, F, C, H, W] in [-1, 1], new stream)``, ``F = 1 + (n-1)·t``
        when starting, ``n·t`` after (:class:`wmkit.core.StreamingDecoder`).

        The decoder's causal caches are loaded from ``stream``, the latents decoded, and the
        caches collected into a new :class:`VidTokStream`; the modules hold no state after
        the call, so ``stream`` can be kept and continued several ways. The steps'
        frames concatenate to ``decode`` of all latents up to float error. Gradients flow
        within a step (not into earlier steps: the caches are detached).

        Only for ``temporal_upsample="nearest"``: VidTok v1.1's ``"trilinear"`` upsampling
        looks one latent ahead, so a step's last frames would change once the next latent
        is known and the steps could not equal ``decode``; it raises ``ValueError`` (use
        :meth:`decode_chunks`, VidTok's overlapped decode, or ``decode``).
        """
        if self.temporal_upsample != "nearest":
            raise ValueError(
                "decode_next needs a causal decoder (temporal_upsample='nearest'); this VidTok "
                f"has temporal_upsample={self.temporal_upsample!r}, which looks one latent frame "
                "ahead: use decode_chunks (overlapped, VidTok v1.1's long-video decode) or decode"
            )
        z = self._to_codes(latents)  # [B, C, n, h, w]
        if z.shape[2] < 1:
            raise ValueError(f"latents must hold at least one latent frame; got {z.shape[2]}")
        parts = _streaming_parts(self.decoder)
        if stream is not None:
            _check_stream(stream, parts, z.shape[0])
        with streaming(self.decoder):
            for module, cache in zip(parts, () if stream is None else stream.caches, strict=False):
                module._cache = cache
            frames = self._decode_codes(z, first=stream is None).clamp(-1, 1)
            caches = tuple(None if m._cache is None else m._cache.clone() for m in parts)
        done = 0 if stream is None else stream.latent_frames
        return frames, VidTokStream(caches=caches, latent_frames=done + z.shape[2])


def _check_stream(stream: Any, parts: list[StreamingModule], batch: int) -> None:
    if not isinstance(stream, VidTokStream):
        raise TypeError(
            f"stream must be None or the VidTokStream a decode_next call returned; got "
            f"{type(stream).__name__}"
        )
    if len(stream.caches) != len(parts):
        raise ValueError(
            f"stream holds {len(stream.caches)} caches but this decoder has {len(parts)} causal "
            "modules: it comes from another VidTok"
        )
    for cache in stream.caches:
        if cache is not None and cache.shape[0] != batch:
            raise ValueError(
                f"stream was made for batch size {cache.shape[0]}; latents have batch {batch}"
            )
