"""``StreamingDecoder`` and ``check_streaming_decode``: a tiny causal decoder (each latent
step mixes in the previous latent) passes the check for several splits; one whose stream is
a mutable object updated in place, one that forgets its past, and one that returns the wrong
number of frames each fail it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from wmkit.core import Latents, StreamingDecoder, Tokenizer, streamed_frames
from wmkit.core.testing import check_streaming_decode


class CausalToy:
    """Continuous latents ``[B, T', 3, h, w]`` → ``1 + t·(T' - 1)`` frames; latent ``j > 0``
    gives ``t`` frames mixing it with latent ``j - 1``, so decoding needs the past. The
    stream is the last latent frame (a tensor nobody writes to)."""

    kind, vocab_size, latent_channels, spatial_compression = "continuous", None, 3, 1
    temporal_compression = 2

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        return (1 + (num_frames - 1) // 2, 3, height, width)

    def encode(self, video: Tensor) -> Latents:
        return Latents(values=video[:, ::2], kind="continuous")

    def _steps(self, z: Tensor, prev: Tensor | None) -> list[Tensor]:
        out = [] if prev is not None else [torch.tanh(z[:, :1])]
        past = torch.cat([prev, z[:, :-1]], dim=1) if prev is not None else z[:, :-1]
        now = z if prev is not None else z[:, 1:]
        for j in range(now.shape[1]):
            a, b = now[:, j : j + 1], past[:, j : j + 1]
            out += [torch.tanh(a + 0.5 * b), torch.tanh(a - 0.25 * b)]
        return out

    def decode(self, latents: Latents | Tensor) -> Tensor:
        z = latents.values if isinstance(latents, Latents) else latents
        return torch.cat(self._steps(z, None), dim=1)

    def decode_next(self, latents: Latents | Tensor, stream: Tensor | None = None):
        z = latents.values if isinstance(latents, Latents) else latents
        return torch.cat(self._steps(z, stream), dim=1), z[:, -1:]


class InPlaceStream(CausalToy):
    """Keeps its past in a dict it updates in place: chunking works, forking does not."""

    def decode_next(self, latents, stream=None):
        z = latents.values if isinstance(latents, Latents) else latents
        frames = torch.cat(self._steps(z, None if stream is None else stream["prev"]), dim=1)
        stream = {} if stream is None else stream
        stream["prev"] = z[:, -1:]
        return frames, stream


class Forgetful(CausalToy):
    """Treats every later step as if the past were zeros."""

    def decode_next(self, latents, stream=None):
        z = latents.values if isinstance(latents, Latents) else latents
        prev = None if stream is None else torch.zeros_like(z[:, :1])
        return torch.cat(self._steps(z, prev), dim=1), z[:, -1:]


class ExtraFrame(CausalToy):
    """Decodes a later step's ``t`` frames plus a repeat of the last one."""

    def decode_next(self, latents, stream=None):
        frames, new = super().decode_next(latents, stream)
        return (frames if stream is None else torch.cat([frames, frames[:, -1:]], 1)), new


def _latents() -> Tensor:
    return torch.randn(2, 5, 3, 4, 4, generator=torch.Generator().manual_seed(0))


def test_streamed_frames_counts_the_first_latent_as_one_frame():
    assert streamed_frames(1, 4, starts=True) == 1
    assert streamed_frames(3, 4, starts=True) == 9
    assert streamed_frames(3, 4, starts=False) == 12
    with pytest.raises(ValueError, match="at least one latent"):
        streamed_frames(0, 4, starts=False)


@pytest.mark.parametrize("splits", [[1, 1, 1, 1, 1], [2, 3], [4, 1], [1, 4]])
def test_a_causal_decoder_passes_for_any_split(splits):
    toy = CausalToy()
    assert isinstance(toy, Tokenizer) and isinstance(toy, StreamingDecoder)
    check_streaming_decode(toy, Latents(values=_latents(), kind="continuous"), splits, atol=0.0)


@pytest.mark.parametrize(
    ("toy", "match"),
    [
        (InPlaceStream(), "continuation from a kept stream"),
        (Forgetful(), "chunked decode vs decode"),
        (ExtraFrame(), r"must return \[B, 2, C, H, W\]"),
    ],
)
def test_broken_streams_fail_the_check(toy, match):
    with pytest.raises(AssertionError, match=match):
        check_streaming_decode(toy, _latents(), [2, 1, 2], atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="summing to the 5 latent"):
        check_streaming_decode(CausalToy(), _latents(), [2, 2])
    with pytest.raises(ValueError, match="symmetric"):
        check_streaming_decode(CausalToy(), torch.zeros(1, 3, 3, 2, 2), [1, 2])
    with pytest.raises(AssertionError, match="StreamingDecoder"):
        check_streaming_decode(object(), _latents(), [2, 3])
