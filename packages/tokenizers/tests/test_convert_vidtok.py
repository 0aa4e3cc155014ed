"""Released causal VidTok checkpoints convert into ``VidTokTokenizer`` and reproduce the
original code's outputs (fixtures made by running microsoft/VidTok; see the fixtures'
README for how and for the tolerances used here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from einops import rearrange
from safetensors.torch import load_file

from wmkit.core import Tokenizer, load_pretrained
from wmkit.core.cli import main as wmkit_main
from wmkit.tokenizers import VidTokTokenizer
from wmkit.tokenizers.convert_vidtok import (
    convert_vidtok,
    map_vidtok_state_dict,
    read_vidtok_checkpoint,
    vidtok_config,
)

REPO = Path(__file__).resolve().parents[3]
PARITY = Path(os.environ.get("WMKIT_PARITY_DIR", REPO.parent / "shared" / "parity")) / "vidtok"
CASES = [
    "vidtok_kl_causal_488_4chn",
    "vidtok_kl_causal_488_16chn",
    "vidtok_kl_causal_41616_4chn",
    "vidtok_kl_causal_288_8chn",
    "vidtok_fsq_causal_488_32768",
    "vidtok_fsq_causal_41616_262144",
    "vidtok_kl_causal_488_16chn_v1_1",
    "vidtok_fsq_causal_488_32768_v1_1",
]
LATENT_ATOL, RECON_ATOL = 1e-5, 2e-5

needs_fixtures = pytest.mark.skipif(
    not PARITY.is_dir(),
    reason=f"VidTok parity fixtures not found at {PARITY} (a clone without ../shared; "
    "set WMKIT_PARITY_DIR to the directory holding vidtok/)",
)


def _tiny_config() -> dict:
    """A small causal VidTok v1.0 config (model section) for tests that need no fixtures."""
    params = {
        "double_z": True, "z_channels": 4, "in_channels": 3, "out_ch": 3, "ch": 4,
        "ch_mult": [1, 2, 2], "time_downsample_factor": 4, "num_res_blocks": 1,
        "init_pad_mode": "replicate", "norm_type": "layernorm",
    }  # fmt: skip
    module = "vidtok.modules.model_3dcausal"
    return {
        "model": {
            "target": "vidtok.models.autoencoder.AutoencodingEngine",
            "params": {
                "encoder_config": {"target": f"{module}.EncoderCausal3DPadding", "params": params},
                "decoder_config": {
                    "target": f"{module}.DecoderCausal3DPadding",
                    "params": "${model.params.encoder_config.params}",
                },
                "regularizer_config": {
                    "target": "vidtok.modules.regularizers.DiagonalGaussianRegularizer"
                },
            },
        }
    }


def _bcthw(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b t c h w -> b c t h w")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    """Each case converted once through ``wmkit convert vidtok`` and loaded by path."""
    root = tmp_path_factory.mktemp("vidtok")
    out = {}
    for case in CASES:
        d = root / case
        code = wmkit_main(
            [
                "convert",
                "vidtok",
                str(PARITY / case / "checkpoint.ckpt"),
                "--config",
                str(PARITY / case / "config.yaml"),
                "--out",
                str(d),
            ]
        )
        assert code == 0
        out[case] = d
    return out


def _assert_close(got: torch.Tensor, want: torch.Tensor, atol: float, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    diff = (got - want).abs().max().item()
    assert diff <= atol, f"{what}: max abs diff {diff:.3g} > {atol}"


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_whole_clip_parity(case, converted):
    """Latents / FSQ ids and reconstructions of the original whole-clip encode and decode.

    VidTok v1.1's decoder returns ``t·T'`` frames and its callers keep the last ``T``;
    wmkit returns ``1 + t·(T' - 1)``, so the reference is cut to its last frames. ``decode``
    clamps to [-1, 1] (the original does not), so it is compared with the clamped
    reference and the unclamped training ``forward`` with the reference itself.
    """
    tok = load_pretrained(converted[case])
    assert isinstance(tok, VidTokTokenizer) and isinstance(tok, Tokenizer)
    tok.eval()
    io = load_file(str(PARITY / case / "io.safetensors"))
    video = rearrange(io["x"], "b c t h w -> b t c h w")
    n = video.shape[1]
    with torch.no_grad():
        latents = tok.encode(video).values
        if tok.kind == "discrete":
            assert torch.equal(latents, io["indices"].long()), "FSQ indices differ"
            codes = _bcthw(tok.ids_to_codes(latents))
            _assert_close(codes, io["latent"], LATENT_ATOL, "FSQ codes")
        else:
            _assert_close(_bcthw(latents), io["latent"], LATENT_ATOL, "KL posterior mode")
        recon = tok.decode(latents)
        train = tok(video, sample_posterior=False).reconstruction
    want = io["recon"][:, :, -n:]
    _assert_close(_bcthw(recon), want.clamp(-1, 1), RECON_ATOL, "decode")
    _assert_close(_bcthw(train), want, RECON_ATOL, "forward reconstruction")


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_long_video_streaming_parity(case, converted):
    """``encode_chunks`` / ``decode_chunks`` cut as VidTok's long-video path
    (``--read_long_video --chunk_size 16``: frames [0:1] then 16 at a time, latents [0:1]
    then ``16 / t`` at a time) reproduce the ``long_*`` tensors: v1.1's tiled path with
    overlapping decode chunks, v1.0's whole-clip call (its decoder is exactly causal), which
    v1.0's ``decode_next`` also reproduces one latent step at a time."""
    tok = load_pretrained(converted[case]).eval()
    io = load_file(str(PARITY / case / "io.safetensors"))
    video = rearrange(io["x_long"], "b c t h w -> b t c h w")
    n, t = video.shape[1], tok.temporal_compression
    frames = [video[:, :1], *video[:, 1:].split(16, dim=1)]
    latents = torch.cat([z.values for z in tok.encode_chunks(frames)], dim=1)
    if tok.kind == "discrete":
        assert torch.equal(latents, io["long_indices"].long()), "FSQ indices differ"
    else:
        _assert_close(_bcthw(latents), io["long_latent"], LATENT_ATOL, "KL posterior mode")
    chunks = [latents[:, :1], *latents[:, 1:].split(16 // t, dim=1)]
    recon = torch.cat(list(tok.decode_chunks(chunks)), dim=1)
    want = io["long_recon"][:, :, -n:].clamp(-1, 1)
    _assert_close(_bcthw(recon), want, RECON_ATOL, "streamed decode")
    if tok.temporal_upsample == "nearest":  # v1.0 is causal: one latent step per decode_next
        stream, steps = None, []
        with torch.no_grad():
            for j in range(latents.shape[1]):
                frames, stream = tok.decode_next(latents[:, j : j + 1], stream)
                steps.append(frames)
        _assert_close(_bcthw(torch.cat(steps, dim=1)), want, RECON_ATOL, "decode_next steps")


@needs_fixtures
def test_v1_1_streamed_decode_differs_from_whole_clip(converted):
    """The tolerance tells v1.1's overlapped chunked decode from its whole-clip decode."""
    tok = load_pretrained(converted["vidtok_kl_causal_488_16chn_v1_1"]).eval()
    io = load_file(str(PARITY / "vidtok_kl_causal_488_16chn_v1_1" / "io.safetensors"))
    latents = rearrange(io["long_latent"], "b c t h w -> b t c h w")
    with torch.no_grad():
        whole = tok.decode(latents)
    want = io["long_recon"][:, :, -whole.shape[1] :].clamp(-1, 1)
    assert (_bcthw(whole) - want).abs().max() > 5 * RECON_ATOL


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_converted_keys_cover_released_checkpoint(case):
    """The released-size key map (``keys_full``) fills a released-size model exactly: every
    ``encoder.*`` / ``decoder.*`` key lands somewhere (q, k, v stack into one tensor), every
    wmkit tensor is filled with the right shape, and only ``loss.*`` is left over."""
    keys = json.loads((PARITY / "keys_full" / f"{case}.json").read_text())
    kwargs, _ = vidtok_config(yaml.safe_load((PARITY / case / "config.yaml").read_text()))
    kwargs["channels"] = keys["encoder.conv_in.conv.weight"][0]
    with torch.device("meta"):
        target = VidTokTokenizer(**kwargs).state_dict()
        state = {k: torch.empty(shape) for k, shape in keys.items()}
    mapped, ignored = map_vidtok_state_dict(state, target, len(kwargs["multipliers"]))
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)
    autoencoder = [k for k in keys if k.startswith(("encoder.", "decoder."))]
    assert len(autoencoder) == len(target) + 2 * 2 * 2  # q, k, v → qkv (weight, bias) ×2
    assert set(ignored) == {"loss"} and len(ignored["loss"]) == len(keys) - len(autoencoder)
    assert sum(v.numel() for v in target.values()) == sum(
        torch.Size(s).numel() for k, s in keys.items() if not k.startswith("loss.")
    )


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"encoder.x": torch.zeros(1)}, "payload": _RunsCode(marker)}, bad)
    with pytest.raises(ValueError, match="refusing to read .*bad.ckpt.*not a tensors-only"):
        read_vidtok_checkpoint(bad)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_tiny_config()))
    code = None
    with pytest.raises(ValueError, match="refusing"):
        code = wmkit_main(
            ["convert", "vidtok", str(bad), "--config", str(config), "--out", str(tmp_path / "o")]
        )
    assert code is None and not marker.exists() and not (tmp_path / "o").exists()


@needs_fixtures
def test_ignored_entries_are_named_and_autoencoder_keys_required(tmp_path, capsys):
    case = PARITY / "vidtok_kl_causal_488_4chn"
    state, _ = read_vidtok_checkpoint(case / "checkpoint.ckpt")
    ckpt = tmp_path / "full.ckpt"
    extra = {"model_ema.decay": torch.tensor(0.99), "model_ema.num_updates": torch.tensor(3)}
    torch.save({"state_dict": {**state, **extra}, "epoch": 3, "global_step": 7}, ckpt)
    out = tmp_path / "out"
    wmkit_main(
        ["convert", "vidtok", str(ckpt), "--config", str(case / "config.yaml"), "--out", str(out)]
    )
    line = capsys.readouterr().out.splitlines()[0]
    assert (
        "ignored 40 loss.*, 2 model_ema.*" in line and "trainer entries epoch, global_step" in line
    )
    assert (out / "model.safetensors").is_file()

    dropped = dict(state)
    dropped.pop("decoder.up_temporal.1.upsample.mix_factor")
    torch.save({"state_dict": dropped}, tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match=r"decoder\.levels\.2\.time_up\.blend\.logit"):
        convert_vidtok(tmp_path / "missing.ckpt", case / "config.yaml")


def test_non_causal_or_unknown_configs_are_refused(tmp_path):
    config = _tiny_config()
    assert vidtok_config(config)[0]["latent_channels"] == 4
    config["model"]["params"]["encoder_config"]["target"] = (
        "vidtok.modules.model_3dnoncausal.Encoder3D"
    )
    with pytest.raises(ValueError, match="only causal VidTok models"):
        vidtok_config(config)


@needs_fixtures
def test_fine_tune_from_converted_directory(converted):
    """``VidTokModule(init_from=DIR, freeze_encoder=True)`` starts from the converted
    weights, trains the decoder only and ``test`` reports PSNR / SSIM."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tokenizer_lit_helpers import clip_loader, cpu_trainer

    from wmkit.tokenizers.lit import VidTokModule

    directory = converted["vidtok_kl_causal_488_4chn"]
    config = json.loads((directory / "config.json").read_text())
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    tok = VidTokTokenizer(**kwargs)
    module = VidTokModule(
        tok, lr=1e-3, perceptual_weight=0.0, init_from=str(directory), freeze_encoder=True
    )
    reference = load_pretrained(directory)
    assert torch.equal(tok.decoder.conv_out.conv.weight, reference.decoder.conv_out.conv.weight)
    frames = torch.rand(2, 5, 3, 16, 16) * 2 - 1
    trainer = cpu_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, clip_loader(frames))
    assert torch.equal(tok.encoder.conv_in.conv.weight, reference.encoder.conv_in.conv.weight)
    assert not torch.equal(tok.decoder.conv_out.conv.weight, reference.decoder.conv_out.conv.weight)
    metrics = cpu_trainer().test(module, clip_loader(frames), verbose=False)[0]
    assert {"test/psnr", "test/ssim"} <= set(metrics)


@needs_fixtures
def test_wmkit_tokenizer_fit_and_test_start_from_converted_directory(converted, tmp_path):
    """``wmkit tokenizer fit|test -c cfg.yaml`` with the converted ``config.json`` as the
    tokenizer's ``init_args`` and ``init_from`` the directory (fast_dev_run, CPU)."""
    from wmkit.tokenizers.cli import command

    directory = converted["vidtok_fsq_causal_488_32768_v1_1"]
    config = json.loads((directory / "config.json").read_text())
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False},
        "model": {
            "class_path": "wmkit.tokenizers.lit.VidTokModule",
            "init_args": {
                "perceptual_weight": 0.0,
                "init_from": str(directory),
                "freeze_encoder": True,
                "tokenizer": {
                    "class_path": "wmkit.tokenizers.vidtok.VidTokTokenizer",
                    "init_args": {k: v for k, v in config.items() if not k.startswith("_")},
                },
            },
        },
        "data": {
            "class_path": "wmkit.core.testing.toy_lit.MovingSquaresDataModule",
            "init_args": {"num_episodes": 4, "length": 9, "size": 16, "batch_size": 2},
        },
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for sub in ("fit", "test"):
        args = [sub, "-c", str(path), "--trainer.fast_dev_run=true"]
        assert command.run([*args, f"--trainer.default_root_dir={tmp_path}"]) == 0
