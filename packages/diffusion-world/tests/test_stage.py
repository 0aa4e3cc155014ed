"""`wmkit diffusion-world fit|test`: every config runs (tiny) or builds on meta (real size)."""

import sys
from pathlib import Path

import pytest
import torch
import yaml

from wmkit.core import ActionSpec, run_stage
from wmkit.core.testing import check_config_runs
from wmkit.diffusion_world.cli import command
from wmkit.diffusion_world.diamond import DiamondWorldModel
from wmkit.diffusion_world.lit import DiffusionForcingModule

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
TINY = [
    "tiny.yaml", "tiny_4x.yaml", "tiny_flow.yaml", "tiny_svd_unet.yaml", "tiny_unet3d.yaml",
    "tiny_wan.yaml",
    "diamond-tiny.yaml", "diamond-upsampler-tiny.yaml",
]  # fmt: skip
# parameter counts stated in the README
REAL = {
    "crafter_dit_base.yaml": 179_855_474,
    "crafter_svd_unet_small.yaml": 29_470_559,
    "crafter32_dit_edm.yaml": 524_112,
    "crafter_wan_1.3b.yaml": 1_421_467_712,
}


# DIAMOND world models at real size: parameter counts
DIAMOND_REAL = {"diamond-atari.yaml": 4_406_787}


def test_configs_are_all_covered():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == sorted([*TINY, *REAL, *DIAMOND_REAL])


@pytest.mark.parametrize("name", TINY)
def test_tiny_configs_fit_and_test(tmp_path, name):
    (fit, _) = check_config_runs(CONFIGS / name, tmp_path)
    assert isinstance(fit.model, DiffusionForcingModule)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_size_configs_build_on_meta(name):
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    args = dict(cfg["model"]["init_args"]["model"]["init_args"])
    args["action_spec"] = ActionSpec.from_dict(args["action_spec"])
    tokenizer = args.get("tokenizer")
    if isinstance(tokenizer, dict):  # a VAE named by its local directory: its architecture
        assert tokenizer["init_args"] == {
            "vae_class": "AutoencoderKLWan",
            "pretrained_vae": "models/Wan2.1-T2V-1.3B-Diffusers/vae",
        }
        args["tokenizer"] = {**tokenizer, "init_args": {"vae_class": "AutoencoderKLWan"}}
    with torch.device("meta"):
        model = flat_model(**args)
    assert sum(p.numel() for p in model.parameters()) == REAL[name]
    if isinstance(tokenizer, dict):  # diffusers' default AutoencoderKLWan is Wan 2.1's VAE
        tok, k = model.tokenizer, model.frames_per_step
        assert (tok.temporal_compression, tok.latent_channels) == (k, model.channels) == (4, 16)
        assert 64 // tok.spatial_compression == model.image_size  # data/crafter-64
        assert (cfg["data"]["init_args"]["clip_length"] - 1) % k == 0
    assert cfg["data"]["class_path"].endswith("EpisodeDataModule")


@pytest.mark.parametrize("name", sorted(DIAMOND_REAL))
def test_real_size_diamond_configs_build_on_meta(name):
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    assert cfg["model"]["class_path"] == "wmkit.diffusion_world.diamond.lit.DiamondModule"
    args = dict(cfg["model"]["init_args"]["model"]["init_args"])
    with torch.device("meta"):
        model = DiamondWorldModel(**args)
    assert sum(p.numel() for p in model.parameters()) == DIAMOND_REAL[name]
    assert cfg["data"]["class_path"].endswith("EpisodeDataModule")


def test_cli_command_runs_diamond_fit(tmp_path):
    argv = ["fit", "-c", str(CONFIGS / "diamond-tiny.yaml"), "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}", *QUIET]  # fmt: skip
    assert command.run(argv) == 0


def test_cli_command_runs_fit(tmp_path):
    code = command.run(
        [
            "fit",
            "-c",
            str(CONFIGS / "tiny.yaml"),
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
            *QUIET,
        ]
    )
    assert code == 0


def test_gradient_checkpointing_and_resume_from_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    common = [
        "-c",
        str(CONFIGS / "tiny.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=0",
        "--model.init_args.gradient_checkpointing=true",
        *QUIET,
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={ckpt}",
        "--trainer.callbacks.save_last=true",
    ]
    run_stage(None, None, ["fit", *common, "--trainer.max_epochs=1"])
    second = run_stage(
        None, None, ["fit", *common, "--trainer.max_epochs=2", f"--ckpt_path={ckpt / 'last.ckpt'}"]
    )
    assert second.trainer.global_step == 4
