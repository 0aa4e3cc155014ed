"""Conformance check for :class:`wmkit.core.StreamingDecoder`: chunked decode equals whole
decode, and a kept stream forks into independent continuations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from wmkit.core.protocols import Latents
from wmkit.core.streaming import StreamingDecoder, streamed_frames
from wmkit.core.testing.conformance import assert_same, check_protocol

__all__ = ["check_streaming_decode"]


def _decode_in_steps(
    tokenizer: Any, latents: Tensor, splits: Sequence[int], stream: Any | None, what: str
) -> tuple[Tensor, Any]:
    """Feed ``latents`` through ``decode_next`` in ``splits``-sized steps, checking each
    step's frame count; → (the steps' frames concatenated, the last stream)."""
    t = tokenizer.temporal_compression
    frames, start = [], 0
    for n in splits:
        out, stream_out = tokenizer.decode_next(latents[:, start : start + n], stream)
        expected = streamed_frames(n, t, starts=stream is None)
        if not isinstance(out, Tensor) or out.ndim != 5 or out.shape[1] != expected:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise AssertionError(
                f"{what}: decode_next of {n} latent frames (t={t}, "
                f"{'starting' if stream is None else 'continuing'}) must return "
                f"[B, {expected}, C, H, W]; got {shape}"
            )
        if out.abs().max() > 1:
            raise AssertionError(f"{what}: decode_next returned values outside [-1, 1]")
        frames.append(out)
        stream, start = stream_out, start + n
    return torch.cat(frames, dim=1), stream


def _other_continuation(rest: Tensor) -> Tensor:
    """Latents of a different future: the continuation reversed in time and mirrored in
    width (valid ids stay valid, continuous values keep their distribution)."""
    other = rest.flip(1).flip(-1)
    if torch.equal(other, rest):
        raise ValueError(
            "check_streaming_decode: the latents after the first split are symmetric in time "
            "and width, so no different continuation can be built from them; pass other latents"
        )
    return other


@torch.no_grad()
def check_streaming_decode(
    tokenizer: Any,
    latents: Latents | Tensor,
    splits: Sequence[int],
    atol: float = 1e-5,
) -> None:
    """Assert that ``tokenizer`` streams its decode (see :class:`~wmkit.core.StreamingDecoder`).

    - decoding ``latents`` (``[B, T', ...]``) in steps of ``splits`` latent frames (summing
      to ``T'``) returns ``1 + (n - 1)·t`` then ``n·t`` frames per step, and their
      concatenation equals ``decode(latents)`` within ``atol``;
    - the stream kept after the first step forks: a different continuation decoded from it,
      and then the original continuation decoded from it again, each equal the matching
      frames of ``decode`` of the whole sequence (so no call mutated the kept stream);
    - ``decode`` still gives the same result afterwards (streaming left no state behind).

    Args:
        tokenizer: a ``Tokenizer`` that is also a ``StreamingDecoder``.
        latents: latents of one video batch (ids or continuous values), at least 2 frames.
        splits: latent frames per ``decode_next`` call, at least two steps.
        atol: tolerance against the whole decode (``0`` asks for bit-identical frames).
    """
    check_protocol(tokenizer, StreamingDecoder)
    values = latents.values if isinstance(latents, Latents) else latents
    splits = [int(n) for n in splits]
    if len(splits) < 2 or min(splits) < 1 or sum(splits) != values.shape[1]:
        raise ValueError(
            f"splits must be >= 2 positive step sizes summing to the {values.shape[1]} latent "
            f"frames; got {splits}"
        )
    whole = tokenizer.decode(values)
    chunked, _ = _decode_in_steps(tokenizer, values, splits, None, "chunked decode")
    assert_same(chunked, whole, atol=atol, what="chunked decode vs decode")

    head = splits[0]
    _, kept = tokenizer.decode_next(values[:, :head], None)
    skip = streamed_frames(head, tokenizer.temporal_compression, starts=True)
    other = torch.cat([values[:, :head], _other_continuation(values[:, head:])], dim=1)
    other_whole = tokenizer.decode(other)
    for name, seq, full in (("other", other, other_whole), ("original", values, whole)):
        forked, _ = _decode_in_steps(tokenizer, seq[:, head:], splits[1:], kept, f"{name} fork")
        what = f"{name} continuation from a kept stream"
        assert_same(forked, full[:, skip:], atol=atol, what=what)
    if torch.equal(other_whole[:, skip:], whole[:, skip:]):
        raise AssertionError("the two continuations decode alike: the fork check proves nothing")
    assert_same(tokenizer.decode(values), whole, atol=0.0, what="decode after streaming")
