"""A diffusers VAE as a per-frame tokenizer (``AutoencoderKL``, and ``AutoencoderKLWan`` with
``frame_wise=True``): both VAE classes encode each frame on its own with their latent
normalisation (SD's scaling and shift, Wan's per-channel mean and std), decode inverts it, the
saved tokenizer loads without the VAE's directory, ``decode_next`` streams per-frame latents
without state, it drives a Wan world model on its latents,
and bad input fails clearly. Wan's video latents: ``test_vae_tokenizer_video.py``."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan

from wmkit.core import ActionSpec, StreamingDecoder, Tokenizer, load_pretrained, to_float_video
from wmkit.core.testing import WorldModelTests, check_streaming_decode, moving_squares
from wmkit.diffusion_world import DiffusersVAETokenizer, DiffusionWorldModel
from wmkit.diffusion_world.vae_tokenizer import VAEStream

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

KL = {
    "block_out_channels": (8, 16),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "layers_per_block": 1,
    "scaling_factor": 0.5,
    "shift_factor": 0.1,
}
WAN = {
    "base_dim": 8,
    "z_dim": 4,
    "dim_mult": [1, 2],
    "num_res_blocks": 1,
    "temperal_downsample": [False],
    "latents_mean": [0.1, 0.2, 0.0, -0.1],
    "latents_std": [1.5, 2.0, 1.0, 0.5],
    "scale_factor_spatial": 2,
}
VAES = {"AutoencoderKL": (AutoencoderKL, KL), "AutoencoderKLWan": (AutoencoderKLWan, WAN)}


def _video(t: int = 3):
    return torch.rand(2, t, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _raw_mode(vae, frames):  # frames [N, C, H, W] → the VAE's own posterior mode [N, c, h, w]
    if isinstance(vae, AutoencoderKLWan):
        return vae.encode(frames[:, :, None]).latent_dist.mode()[:, :, 0]
    return vae.encode(frames).latent_dist.mode()


@pytest.mark.parametrize("vae_class", VAES)
def test_each_frame_is_encoded_alone_with_the_vaes_normalisation(vae_class):
    torch.manual_seed(0)
    tok = DiffusersVAETokenizer(vae_class, vae_kwargs=VAES[vae_class][1], frame_wise=True)
    assert isinstance(tok, Tokenizer) and tok.kind == "continuous"
    assert (tok.latent_channels, tok.spatial_compression, tok.temporal_compression) == (4, 2, 1)
    video = _video()
    z = tok.encode(video).values
    assert z.shape == (2, *tok.tokens_shape(3, 16, 16)) == (2, 3, 4, 8, 8)
    changed = video.clone()
    changed[:, 1] = 0.0
    z2 = tok.encode(changed).values
    assert torch.equal(z2[:, [0, 2]], z[:, [0, 2]])  # frames do not see each other
    assert (z2[:, 1] - z[:, 1]).abs().max() > 1e-3
    with torch.no_grad():
        raw = _raw_mode(tok.vae, video.flatten(0, 1))  # [6, 4, 8, 8]
    if vae_class == "AutoencoderKL":  # (mode - shift) * scaling
        expected = (raw - 0.1) * 0.5
    else:  # (mode - mean) / std per channel
        mean = torch.tensor(WAN["latents_mean"]).view(1, 4, 1, 1)
        expected = (raw - mean) / torch.tensor(WAN["latents_std"]).view(1, 4, 1, 1)
    torch.testing.assert_close(z.flatten(0, 1), expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # decoding undoes the normalisation: the VAE's own reconstruction
        own = tok.vae.decode(raw[:, :, None] if vae_class == "AutoencoderKLWan" else raw).sample
        own = own[:, :, 0] if vae_class == "AutoencoderKLWan" else own
    torch.testing.assert_close(
        tok.decode(tok.encode(video)).flatten(0, 1), own.clamp(-1, 1), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("vae_class", VAES)
def test_per_frame_latents_stream_without_state(vae_class):
    torch.manual_seed(0)
    tok = DiffusersVAETokenizer(vae_class, vae_kwargs=VAES[vae_class][1], frame_wise=True)
    assert isinstance(tok, StreamingDecoder)
    latents = tok.encode(_video())
    check_streaming_decode(tok, latents, [1, 2], atol=1e-6)
    frames, stream = tok.decode_next(latents.values[:, :2])
    assert frames.shape[1] == 2 and stream == VAEStream(feat_cache=(), latent_frames=2)


@pytest.mark.parametrize("vae_class", VAES)
def test_a_pretrained_vae_is_saved_into_the_tokenizer(tmp_path, vae_class):
    cls, config = VAES[vae_class]
    torch.manual_seed(3)
    cls(**config).save_pretrained(tmp_path / "vae")
    tok = DiffusersVAETokenizer(vae_class, pretrained_vae=str(tmp_path / "vae"), frame_wise=True)
    tok.save_pretrained(tmp_path / "tokenizer")
    saved = json.loads((tmp_path / "tokenizer" / "config.json").read_text())
    channels = "latent_channels" if vae_class == "AutoencoderKL" else "z_dim"
    assert saved["pretrained_vae"] is None and saved["vae_kwargs"][channels] == 4
    shutil.rmtree(tmp_path / "vae")
    again = load_pretrained(tmp_path / "tokenizer")
    assert isinstance(again, DiffusersVAETokenizer)
    video = _video()
    assert torch.equal(again.encode(video).values, tok.encode(video).values)


def test_bad_input_fails_clearly(tmp_path):
    tok = DiffusersVAETokenizer("AutoencoderKL", vae_kwargs=KL)
    with pytest.raises(ValueError, match="divide"):
        tok.encode(torch.zeros(1, 2, 3, 15, 16))
    with pytest.raises(ValueError, match=r"\[B, T, 4, h, w\]"):
        tok.decode(torch.zeros(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="vae_class"):
        DiffusersVAETokenizer("VQModel")
    with pytest.raises(FileNotFoundError, match="no diffusers VAE"):
        DiffusersVAETokenizer(pretrained_vae=str(tmp_path / "nowhere"))
    AutoencoderKL(**KL).save_pretrained(tmp_path / "kl")
    with pytest.raises(ValueError, match="vae_class is AutoencoderKLWan"):
        DiffusersVAETokenizer("AutoencoderKLWan", pretrained_vae=str(tmp_path / "kl"))
    with pytest.raises(ValueError, match="latents_mean"):
        DiffusersVAETokenizer(
            "AutoencoderKLWan", vae_kwargs={**WAN, "latents_mean": [0.0] * 3}, frame_wise=True
        )


def _wan_world(tokenizer: str) -> DiffusionWorldModel:
    return flat_model(
        ActionSpec.discrete(5), network="wan", channels=4, image_size=8, tokenizer=tokenizer,
        num_sampling_steps=1, context_window=3,
    )  # fmt: skip


class TestWanWorldModelOnWanLatents(WorldModelTests):
    """The pairing a pretrained Wan needs: its transformer on its VAE's latents."""

    @pytest.fixture(autouse=True)
    def _tokenizer(self, tmp_path):
        torch.manual_seed(0)
        wan = DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=WAN, frame_wise=True)
        wan.save_pretrained(tmp_path / "t")
        self.tokenizer_dir = str(tmp_path / "t")

    def make_model(self):
        return _wan_world(self.tokenizer_dir)

    def make_inputs(self):
        eps = moving_squares(num_episodes=1, length=4, size=16)
        return to_float_video(eps.frames)[:, :1], torch.from_numpy(eps.actions)[:, :3]


def test_a_world_model_on_vae_latents_saves_its_tokenizer(tmp_path):
    torch.manual_seed(0)
    wan = DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=WAN, frame_wise=True)
    wan.save_pretrained(tmp_path / "tok")
    model = _wan_world(str(tmp_path / "tok")).eval()
    model.save_pretrained(tmp_path / "world")
    shutil.rmtree(tmp_path / "tok")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "world")
    assert isinstance(again.tokenizer, DiffusersVAETokenizer)
    frames = to_float_video(moving_squares(num_episodes=1, length=2, size=16).frames)
    assert torch.equal(again.encode(frames), model.encode(frames))
