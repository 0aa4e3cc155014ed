"""Streaming decode: a causal tokenizer decodes a video latent step by latent step.

A world model in a temporally compressed latent space (one latent step spans ``t`` video
frames, the first latent holds frame 0 alone, as in VidTok's and Wan 2.1's causal VAEs)
generates latents one step at a time. Decoding the whole latent history after every step
costs time quadratic in the rollout length; a causal decoder only needs what its causal
layers remember of the past. :class:`StreamingDecoder` is that seam: the tokenizer hands
back its memory as an opaque, immutable *stream* value, and the caller passes it to the next
call. Keeping a stream and decoding two continuations from it is how a planner forks world
states (``wmkit.core.testing.check_streaming_decode`` checks both properties).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from wmkit.core.protocols import Latents

__all__ = ["StreamingDecoder", "streamed_frames"]


def streamed_frames(num_latents: int, temporal_compression: int, starts: bool) -> int:
    """Frames that ``decode_next`` returns for ``num_latents`` latent frames: ``1 + (n - 1)·t``
    when they start the video (the first latent holds frame 0 alone), ``n·t`` after."""
    if num_latents < 1:
        raise ValueError(f"a decode step needs at least one latent frame; got {num_latents}")
    t = temporal_compression
    return 1 + (num_latents - 1) * t if starts else num_latents * t


@runtime_checkable
class StreamingDecoder(Protocol):
    """A tokenizer that decodes the latents of a video a few latent frames at a time.

    Implemented next to ``Tokenizer.decode`` by causal tokenizers (``temporal_compression``
    ``t >= 1``; a per-frame tokenizer is the case ``t = 1`` with an empty stream).
    """

    def decode_next(
        self, latents: Latents | Tensor, stream: Any | None = None
    ) -> tuple[Tensor, Any]:
        """Decode the next ``n >= 1`` latent frames of a video.

        Args:
            latents: the next latent frames, in the layout ``decode`` takes (continuous
                ``float [B, n, c, h, w]``, discrete ids ``long [B, n, h, w]``), or their
                ``Latents``.
            stream: what an earlier call returned after the video's previous latents, or
                ``None`` when these latents start the video (the first of them is frame 0's
                latent, which decodes to frame 0 alone).

        Returns:
            ``(frames, new_stream)``: ``frames`` ``float [B, F, C, H, W]`` in [-1, 1] with
            ``F = 1 + (n - 1)·t`` when starting and ``F = n·t`` after
            (:func:`streamed_frames`), and the stream to pass with the following latents.

        The stream is an immutable value: a call never mutates a stream passed in (nor any
        tokenizer state that a later call reads), so a caller may keep a stream and decode
        several different continuations from it, e.g. for forked world-model states. The
        outputs of consecutive calls, concatenated along time, equal ``decode`` of all the
        latents at once (exactly, up to float error, for a causal decoder; a tokenizer whose
        decoder looks ahead documents how it differs or refuses). A stream belongs to the
        batch, device and frame size it was made with.
        """
        ...
