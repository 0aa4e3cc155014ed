"""Wan's VAE with its real 4x temporal compression (``DiffusersVAETokenizer``, default
``frame_wise=False``), on tiny random Wan 2.1- and Wan 2.2-style (residual, 2x2 patches) VAEs:
``1 + 4n`` frames encode to ``1 + n`` latents equal to diffusers' own ``vae.encode`` normalised
per channel, causally, passing the tokenizer conformance check; ``decode`` is diffusers'
``vae.decode``; ``decode_next`` in steps (one latent per call included) equals both and forks
from a kept stream; a ``config.json`` saved before ``frame_wise`` existed loads per-frame; bad
frame counts, VAEs without 4x temporal compression and foreign streams fail clearly.
(Per-frame tokenizers' stateless ``decode_next``: ``test_vae_tokenizer.py``.)"""

import json

import pytest
import torch

from wmkit.core import StreamingDecoder, Tokenizer, load_pretrained
from wmkit.core.testing import check_streaming_decode, check_tokenizer
from wmkit.diffusion_world import DiffusersVAETokenizer

MEAN, STD = [0.1, 0.2, 0.0, -0.1], [1.5, 2.0, 1.0, 0.5]
WAN21 = {
    "base_dim": 8,
    "z_dim": 4,
    "dim_mult": [1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [True, True],
    "latents_mean": MEAN,
    "latents_std": STD,
    "scale_factor_spatial": 4,
}
WAN22 = {  # Wan 2.2's layout: residual blocks, 2x2 pixel patches (12 channels in and out)
    **WAN21,
    "is_residual": True,
    "patch_size": 2,
    "in_channels": 12,
    "out_channels": 12,
    "scale_factor_spatial": 8,
}
CONFIGS = {"wan2.1": WAN21, "wan2.2": WAN22}


def _video(t: int, b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tokenizer(name: str, **kwargs) -> DiffusersVAETokenizer:
    torch.manual_seed(0)
    return DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=CONFIGS[name], **kwargs)


def _normalised(raw: torch.Tensor) -> torch.Tensor:  # [B, c, T', h, w] → [B, T', c, h, w]
    z = (raw - torch.tensor(MEAN).view(1, 4, 1, 1, 1)) / torch.tensor(STD).view(1, 4, 1, 1, 1)
    return z.transpose(1, 2)


@pytest.mark.parametrize("name", CONFIGS)
def test_clips_encode_as_video_like_diffusers(name):
    tok = _tokenizer(name)
    s = tok.spatial_compression
    assert isinstance(tok, Tokenizer) and isinstance(tok, StreamingDecoder)
    assert tok.temporal_compression == 4 and tok.tokens_shape(9, 16, 16) == (3, 4, 16 // s, 16 // s)
    video = _video(9)
    z = tok.encode(video).values
    assert z.shape == (2, *tok.tokens_shape(9, 16, 16))
    with torch.no_grad():
        raw = tok.vae.encode(video.transpose(1, 2)).latent_dist.mode()  # [B, c, 3, h, w]
        own = tok.vae.decode(raw).sample.transpose(1, 2)  # [B, 9, C, H, W]
    torch.testing.assert_close(z, _normalised(raw), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tok.decode(z), own.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    assert tok.decode(z).shape == video.shape
    changed = video.clone()
    changed[:, 5:] = 0.0  # frames of latent 2 only
    z2 = tok.encode(changed).values
    assert torch.equal(z2[:, :2], z[:, :2]) and (z2[:, 2] - z[:, 2]).abs().max() > 1e-4


@pytest.mark.parametrize("name", CONFIGS)
def test_video_tokenizer_conforms(name):
    """Shapes, determinism, causality over frames (latent j sees frames <= 4j), clear errors,
    save/load."""
    check_tokenizer(_tokenizer(name), _video(9, b=1))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("splits", [[1, 1, 1, 1], [2, 2], [1, 3], [3, 1]])
def test_streaming_decode_equals_decode_and_forks(name, splits):
    tok = _tokenizer(name)
    latents = tok.encode(_video(13))  # 4 latent frames
    check_streaming_decode(tok, latents, splits, atol=1e-6)


def test_one_latent_per_call_equals_diffusers_decode():
    tok = _tokenizer("wan2.1")
    video = _video(17)
    with torch.no_grad():
        own = tok.vae.decode(tok.vae.encode(video.transpose(1, 2)).latent_dist.mode()).sample
    z = tok.encode(video).values
    stream, steps = None, []
    for j in range(z.shape[1]):
        frames, stream = tok.decode_next(z[:, j : j + 1], stream)
        assert frames.shape[1] == (1 if j == 0 else 4) and stream.latent_frames == j + 1
        steps.append(frames)
    # 1e-5: encode's per-channel normalisation and decode's inverse round in float32
    torch.testing.assert_close(torch.cat(steps, 1), own.transpose(1, 2), atol=1e-5, rtol=0)
    kept = [c.clone() for c in stream.feat_cache if isinstance(c, torch.Tensor)]
    tok.decode_next(z[:, :2], stream)  # decoding on from it leaves the stream as it was
    after = [c for c in stream.feat_cache if isinstance(c, torch.Tensor)]
    assert all(torch.equal(a, b) for a, b in zip(kept, after, strict=True))


def test_a_config_saved_before_frame_wise_keeps_its_meaning(tmp_path):
    video = _video(5)
    old = _tokenizer("wan2.1", frame_wise=True)  # what earlier versions did
    old.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    config = json.loads(config_file.read_text())
    assert config.pop("frame_wise") is True
    config_file.write_text(json.dumps(config))  # as written before the argument existed
    again = load_pretrained(tmp_path / "old")
    assert again.temporal_compression == 1
    assert torch.equal(again.encode(video).values, old.encode(video).values)
    new = _tokenizer("wan2.1")
    new.save_pretrained(tmp_path / "new")
    assert json.loads((tmp_path / "new" / "config.json").read_text())["frame_wise"] is False
    loaded = load_pretrained(tmp_path / "new")
    assert loaded.temporal_compression == 4
    assert torch.equal(loaded.encode(video).values, new.encode(video).values)


def test_bad_input_fails_clearly():
    tok = _tokenizer("wan2.1")
    with pytest.raises(ValueError, match=r"1 \+ n·4 frames .* got T=3"):
        tok.encode(_video(3))
    with pytest.raises(ValueError, match="T=8"):
        tok.tokens_shape(8, 16, 16)
    with pytest.raises(ValueError, match=r"frame_wise=True for per-frame latents"):
        DiffusersVAETokenizer(
            "AutoencoderKLWan", vae_kwargs={**WAN21, "temperal_downsample": [False, True]}
        )
    with pytest.raises(ValueError, match="compresses 4x .scale_factor_temporal 2"):
        DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs={**WAN21, "scale_factor_temporal": 2})
    z = tok.encode(_video(9)).values
    _, stream = tok.decode_next(z[:, :1])
    with pytest.raises(TypeError, match="VAEStream"):
        tok.decode_next(z[:, 1:], [None] * 3)
    with pytest.raises(ValueError, match="batch size 2; latents have batch 1"):
        tok.decode_next(z[:1, 1:], stream)
    per_frame = _tokenizer("wan2.1", frame_wise=True)
    _, frame_stream = per_frame.decode_next(per_frame.encode(_video(2)).values)
    with pytest.raises(ValueError, match="another tokenizer or mode"):
        tok.decode_next(z[:, 1:], frame_stream)
    with pytest.raises(ValueError, match="another tokenizer or mode"):
        per_frame.decode_next(per_frame.encode(_video(2)).values, stream)
    with pytest.raises(ValueError, match="at least one latent frame"):
        tok.decode_next(z[:, :0], stream)


def test_real_wan_vae_configs_build_on_meta():
    """Wan 2.1's VAE (diffusers' defaults) and Wan 2.2 TI2V-5B's (residual, 2x2 patches, 48
    channels, 16x down) are video tokenizers with 4x temporal compression."""
    wan22 = {
        "base_dim": 160, "decoder_base_dim": 256, "z_dim": 48, "is_residual": True,
        "patch_size": 2, "in_channels": 12, "out_channels": 12, "scale_factor_spatial": 16,
        "latents_mean": [0.0] * 48, "latents_std": [1.0] * 48,
    }  # fmt: skip
    with torch.device("meta"):
        wan21 = DiffusersVAETokenizer("AutoencoderKLWan")
        assert wan21.tokens_shape(81, 480, 832) == (21, 16, 60, 104)
        assert wan21.temporal_compression == 4
        tok = DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=wan22)
        assert tok.tokens_shape(121, 704, 1280) == (31, 48, 44, 80)
