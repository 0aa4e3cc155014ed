"""``VidTokTokenizer.decode_next`` (``wmkit.core.StreamingDecoder``): decoding latent steps
one call at a time through an immutable ``VidTokStream`` equals ``decode`` of all latents (in
float64 to 1e-10, so the only difference is float rounding; in float32 to 1e-4), for KL latents
and FSQ ids, several splits, 4x and 2x temporal compression and the per-frame model; a kept
stream forks into two continuations; no module state outlives a call; the stream stays the
same size however long the video; trilinear (v1.1) VidToks refuse; bad streams fail clearly."""

import pytest
import torch

from wmkit.core import StreamingDecoder
from wmkit.core.testing import check_streaming_decode
from wmkit.tokenizers import VidTokLayout, VidTokStream, VidTokTokenizer
from wmkit.tokenizers.causal_conv import StreamingModule, is_streaming


def _video(t: int, b: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, size, size, generator=gen) * 2 - 1


def _scrambled(tok: VidTokTokenizer, seed: int = 0) -> VidTokTokenizer:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tok.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return tok.eval()


SPLITS = [[1, 1, 1, 1, 1, 1], [2, 4], [3, 1, 2], [1, 5]]


@pytest.mark.parametrize("splits", SPLITS)
def test_kl_steps_equal_decode_in_float64(splits):
    torch.manual_seed(0)
    tok = _scrambled(VidTokTokenizer("tiny", regularizer="kl")).double()
    assert isinstance(tok, StreamingDecoder)
    latents = tok.encode(_video(21).double())  # 6 latent frames
    check_streaming_decode(tok, latents, splits, atol=1e-10)


@pytest.mark.parametrize("splits", SPLITS[:3])
def test_fsq_ids_steps_equal_decode(splits):
    torch.manual_seed(0)
    tok = _scrambled(VidTokTokenizer("tiny", regularizer="fsq"))
    ids = tok.encode(_video(21)).values
    assert ids.dtype == torch.long
    check_streaming_decode(tok, ids, splits, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "frames", "splits"),
    [
        ({"temporal_compression": 2}, 7, [1, 2, 1]),
        ({"temporal_compression": 1}, 4, [1, 1, 2]),
        ({"temporal_compression": 1, "temporal_mixing": False}, 4, [2, 2]),
        ({"spatial_compression": 16, "attention": True}, 9, [1, 1, 1]),
    ],
)
def test_other_compressions_stream(kwargs, frames, splits):
    torch.manual_seed(0)
    tok = _scrambled(VidTokTokenizer("tiny", **kwargs)).double()
    latents = tok.encode(_video(frames, size=32).double())
    check_streaming_decode(tok, latents, splits, atol=1e-10)


def test_no_state_outlives_a_call_and_the_stream_stays_small(tiny_kl):
    z = tiny_kl.encode(_video(1 + 4 * 6, b=1)).values
    frames, stream = tiny_kl.decode_next(z[:, :1])
    assert frames.shape == (1, 1, 3, 16, 16) and isinstance(stream, VidTokStream)
    sizes = []
    for j in range(1, z.shape[1]):
        frames, stream = tiny_kl.decode_next(z[:, j : j + 1], stream)
        assert frames.shape[1] == 4 and stream.latent_frames == j + 1
        assert not is_streaming(tiny_kl.decoder)
        assert all(m._cache is None for m in tiny_kl.modules() if isinstance(m, StreamingModule))
        sizes.append(sum(c.numel() for c in stream.caches if c is not None))
    assert len(set(sizes)) == 1 and sizes[0] > 0


def test_trilinear_vidtok_refuses(tiny_kl):
    tok = VidTokTokenizer("tiny", layout=VidTokLayout(temporal_upsample="trilinear"))
    z = tok.encode(_video(5)).values
    with pytest.raises(ValueError, match="temporal_upsample='trilinear'"):
        tok.decode_next(z)


def test_bad_streams_fail_clearly(tiny_kl, tiny_fsq):
    z = tiny_kl.encode(_video(9)).values
    _, stream = tiny_kl.decode_next(z[:, :1])
    with pytest.raises(TypeError, match="VidTokStream"):
        tiny_kl.decode_next(z[:, 1:], {"caches": ()})
    with pytest.raises(ValueError, match="batch size 2; latents have batch 1"):
        tiny_kl.decode_next(z[:1, 1:], stream)
    _, fsq_stream = tiny_fsq.decode_next(tiny_fsq.encode(_video(5)).values[:, :1])
    small = VidTokTokenizer("tiny", temporal_compression=1, temporal_mixing=False)
    _, small_stream = small.decode_next(small.encode(_video(2)).values[:, :1])
    with pytest.raises(ValueError, match="another VidTok"):
        tiny_kl.decode_next(z[:, 1:], small_stream)
    assert len(fsq_stream.caches) == len(stream.caches)
    with pytest.raises(ValueError, match="at least one latent frame"):
        tiny_kl.decode_next(z[:, :0], stream)
    chunks = tiny_kl.decode_chunks([z[:, :1], z[:, 1:]])
    next(chunks)
    with pytest.raises(RuntimeError, match="already streaming"):
        tiny_kl.decode_next(z[:, 1:], stream)
    chunks.close()
    tiny_kl.decode_next(z[:, 1:], stream)  # the closed generator released the decoder
