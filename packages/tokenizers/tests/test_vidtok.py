"""VidTokTokenizer: conformance, causality, streaming, FSQ ids, errors, sizes, save/load."""

import pytest
import torch

from wmkit.core import Latents, Tokenizer, load_pretrained
from wmkit.core.testing import TokenizerTests, check_save_load, check_tokenizer
from wmkit.tokenizers import VIDTOK_SIZES, VidTokLayout, VidTokTokenizer
from wmkit.tokenizers.causal_conv import StreamingModule, streaming


def video(t: int, size: int = 16, b: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, size, size, generator=gen) * 2 - 1


def scrambled(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Add noise to every parameter (zero-initialised temporal blocks then mix time too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


class TestTinyKL(TokenizerTests):
    def make_model(self):
        return VidTokTokenizer("tiny", regularizer="kl", latent_channels=4)

    def make_inputs(self):
        return video(9)


class TestTinyFSQ(TokenizerTests):
    def make_model(self):
        return VidTokTokenizer("tiny", regularizer="fsq", fsq_levels=[8, 8, 8, 6, 5])

    def make_inputs(self):
        return video(9)


@pytest.mark.parametrize(
    "kwargs, t, size",
    [
        ({"spatial_compression": 16, "temporal_compression": 4}, 9, 32),  # 4x16x16
        ({"temporal_compression": 1}, 4, 16),  # 1x8x8, causal temporal mixing
        ({"temporal_compression": 1, "temporal_mixing": False}, 4, 16),  # 1x8x8 per frame
        ({"temporal_compression": 2, "regularizer": "fsq", "fsq_levels": [8] * 6}, 5, 16),
    ],
)
def test_other_compressions_conform(kwargs, t, size):
    torch.manual_seed(0)
    tok = scrambled(VidTokTokenizer("tiny", **kwargs))
    check_tokenizer(tok, video(t, size), save_load=False)


@pytest.mark.parametrize("reg", ["kl", "fsq"])
def test_causality_earlier_groups_unchanged(reg):
    """Changing frame f leaves latents 0 .. ceil(f / 4) - 1 unchanged (to 1e-6), decoded
    frames before the changed latent group too; later latents do change."""
    torch.manual_seed(0)
    tok = scrambled(VidTokTokenizer("tiny", regularizer=reg))
    x = video(13)
    base = tok.encode(x).values
    dec = tok.decode(base)
    for f in range(1, 13):
        x2 = x.clone()
        x2[:, f:] = video(13 - f, seed=f)
        out = tok.encode(x2).values
        keep = 1 + (f - 1) // 4
        torch.testing.assert_close(out[:, :keep].float(), base[:, :keep].float(), atol=1e-6, rtol=0)
        if reg == "kl":
            assert not torch.allclose(out[:, keep:], base[:, keep:], atol=1e-4)
    for j in range(1, base.shape[1]):
        z2 = base.clone()
        z2[:, j:] = torch.randint(0, tok.vocab_size, z2[:, j:].shape) if reg == "fsq" else 0.5
        first_affected = 1 + (j - 1) * 4  # frames of latent j are 4j-3 .. 4j
        torch.testing.assert_close(
            tok.decode(z2)[:, :first_affected], dec[:, :first_affected], atol=1e-6, rtol=0
        )


@pytest.mark.parametrize("reg", ["kl", "fsq"])
@pytest.mark.parametrize("per_chunk", [1, 2, 3])
def test_streaming_equals_full_pass(reg, per_chunk):
    torch.manual_seed(0)
    tok = scrambled(VidTokTokenizer("tiny", regularizer=reg))
    x = video(21)  # 6 latent frames
    full = tok.encode(x).values
    parts = list(tok.encode_chunks(tok.split_frames(x, per_chunk)))
    streamed = torch.cat([p.values for p in parts], 1)
    if reg == "fsq":
        assert torch.equal(streamed, full)
    else:
        torch.testing.assert_close(streamed, full, atol=1e-5, rtol=0)
    dec_full = tok.decode(full)
    dec = torch.cat(list(tok.decode_chunks(full.split(per_chunk, dim=1))), 1)
    # fp32: the chunked pass sums the causal convolutions in another order (~1e-5 apart)
    torch.testing.assert_close(dec, dec_full, atol=1e-4, rtol=0)
    assert dec.shape == x.shape


def test_streaming_state_does_not_grow(tiny_kl):
    """The caches hold a fixed number of frames whatever the video length."""
    sizes = []

    def cache_numel() -> int:
        return sum(
            m._cache.numel()
            for m in tiny_kl.modules()
            if isinstance(m, StreamingModule) and m._cache is not None
        )

    x = video(1 + 4 * 8)
    with streaming(tiny_kl.encoder):
        for i, chunk in enumerate(tiny_kl.split_frames(x, 1)):
            tiny_kl._encode_moments(chunk, first=i == 0)
            sizes.append(cache_numel())
    assert len(set(sizes[1:])) == 1 and sizes[1] > 0


def test_stream_chunk_rules(tiny_kl):
    with pytest.raises(ValueError, match="1 \\+ k·t"):
        list(tiny_kl.encode_chunks([video(4)]))
    with pytest.raises(ValueError, match="multiple of t"):
        list(tiny_kl.encode_chunks([video(1), video(3)]))
    stream = tiny_kl.encode_chunks([video(1), video(4)])
    next(stream)
    with pytest.raises(RuntimeError, match="stream"):
        tiny_kl.encode(video(5))
    stream.close()
    tiny_kl.encode(video(5))  # closed stream released the encoder


def test_fsq_decode_accepts_ids_codes_and_latents(tiny_fsq):
    x = video(5)
    lat = tiny_fsq.encode(x)
    assert isinstance(lat, Latents) and lat.kind == "discrete" and lat.values.dtype == torch.long
    codes = tiny_fsq.ids_to_codes(lat.values)  # [B, T', D, h, w]
    assert codes.shape == (1, 2, 5, 2, 2)
    assert torch.equal(tiny_fsq.codes_to_ids(codes), lat.values)
    a = tiny_fsq.decode(lat)
    torch.testing.assert_close(tiny_fsq.decode(codes), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(tiny_fsq.decode(lat.values), a, atol=0, rtol=0)
    out = tiny_fsq(x)
    assert torch.equal(out.ids, lat.values)


def test_protocol_properties():
    kl = VidTokTokenizer("tiny", latent_channels=16)
    fsq = VidTokTokenizer("tiny", regularizer="fsq", fsq_levels=[8] * 6, spatial_compression=16)
    assert isinstance(kl, Tokenizer) and isinstance(fsq, Tokenizer)
    assert (kl.kind, kl.latent_channels, kl.vocab_size) == ("continuous", 16, None)
    assert (fsq.kind, fsq.latent_channels, fsq.vocab_size) == ("discrete", None, 262144)
    assert kl.tokens_shape(17, 64, 64) == (5, 16, 8, 8)
    assert fsq.tokens_shape(17, 64, 64) == (5, 4, 4)
    assert (fsq.spatial_compression, fsq.temporal_compression) == (16, 4)


def test_bad_inputs_raise_clear_errors(tiny_kl, tiny_fsq):
    with pytest.raises(ValueError, match="1 \\+ k·4"):
        tiny_kl.encode(video(8))
    with pytest.raises(ValueError, match="multiples of spatial_compression=8"):
        tiny_kl.encode(video(5, size=12))
    with pytest.raises(ValueError, match="channels"):
        tiny_kl.encode(torch.zeros(1, 5, 1, 16, 16))
    with pytest.raises(ValueError, match="\\[-1, 1\\]"):
        tiny_kl.encode(video(5) * 3)
    with pytest.raises(ValueError, match="latents must be"):
        tiny_kl.decode(torch.zeros(1, 2, 3, 2, 2))
    with pytest.raises(TypeError, match="float"):
        tiny_kl.decode(torch.zeros(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        tiny_fsq.decode(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="15360"):
        tiny_fsq.decode(torch.full((1, 2, 2, 2), 15360))
    with pytest.raises(ValueError, match="power of two"):
        VidTokTokenizer("tiny", spatial_compression=6)
    with pytest.raises(ValueError, match="<= spatial_compression"):
        VidTokTokenizer("tiny", spatial_compression=2, temporal_compression=4)
    with pytest.raises(ValueError, match="temporal_mixing=False"):
        VidTokTokenizer("tiny", temporal_mixing=False)
    with pytest.raises(ValueError, match="size must be one of"):
        VidTokTokenizer("huge")
    with pytest.raises(ValueError, match="regularizer"):
        VidTokTokenizer("tiny", regularizer="vq")


def test_save_load_round_trip(tmp_path, tiny_fsq):
    x = video(5)
    loaded = check_save_load(tiny_fsq, forward=lambda m: m.decode(m.encode(x)))
    assert loaded.vocab_size == 15360
    tiny_fsq.save_pretrained(tmp_path / "tok")
    again = load_pretrained(tmp_path / "tok")  # by path alone, as a later stage does
    assert isinstance(again, VidTokTokenizer)
    assert torch.equal(again.encode(x).values, tiny_fsq.encode(x).values)


# Parameter counts stated in the README (KL-4 / FSQ 8·8·8·6·5 at 4x8x8).
README_COUNTS = {
    ("tiny", "kl"): 43_235,
    ("small", "kl"): 6_629_039,
    ("base", "kl"): 162_760_335,
    ("base", "fsq"): 162_732_684,
}


@pytest.mark.parametrize("size, reg", list(README_COUNTS))
def test_named_sizes_parameter_counts(size, reg):
    with torch.device("meta"):
        tok = VidTokTokenizer(size, regularizer=reg)
    assert tok.num_parameters() == README_COUNTS[(size, reg)]
    assert set(VIDTOK_SIZES) == {"tiny", "small", "base"}


def test_streaming_leaves_callers_grad_mode_alone(tiny_kl):
    stream = tiny_kl.encode_chunks(tiny_kl.split_frames(video(9), 1))
    chunk = next(stream)
    assert torch.is_grad_enabled() and not chunk.values.requires_grad
    stream.close()


def test_vidtok_layout_options_build_stream_and_validate():
    """The released models' layout choices (VidTok's ``spatial_ds``/``tempo_ds``/``tempo_us``,
    LayerNorm, first-frame padding): a 4x4x4 model on four levels that does not downsample
    the first one, as ``vidtok_kl_causal_444_4chn``; it streams exactly."""
    torch.manual_seed(0)
    layout = VidTokLayout(
        norm="layer",
        encoder_spatial_levels=[1, 2],
        decoder_spatial_levels=[1, 2],
        encoder_temporal_levels=[2, 1],
        decoder_temporal_levels=[1, 2],
        time_padding="first_frame",
    )
    tok = VidTokTokenizer(
        "tiny", spatial_compression=4, multipliers=[1, 2, 2, 2], layout=layout
    ).eval()
    assert len(tok.encoder.levels) == 4 and not hasattr(tok.encoder.levels[0], "down")
    video = torch.rand(1, 9, 3, 16, 16) * 2 - 1
    latents = tok.encode(video).values
    assert latents.shape == (1, 3, 4, 4, 4)
    streamed = torch.cat([z.values for z in tok.encode_chunks(tok.split_frames(video))], 1)
    assert torch.allclose(streamed, latents, atol=1e-6)
    assert tok.decode(latents).shape == video.shape
    with pytest.raises(ValueError, match="encoder_temporal_levels must be 2 distinct levels"):
        VidTokTokenizer("tiny", layout=VidTokLayout(encoder_temporal_levels=[0, 0]))
    with pytest.raises(ValueError, match="decoder_spatial_levels must be 3 distinct levels"):
        VidTokTokenizer("tiny", layout=VidTokLayout(decoder_spatial_levels=[0, 1, 2]))
    with pytest.raises(ValueError, match="temporal_upsample must be one of"):
        VidTokLayout(temporal_upsample="cubic")  # type: ignore[arg-type]
