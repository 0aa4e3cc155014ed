"""Every shipped config runs `fit` + `test` (fast_dev_run, CPU); real-size configs build on the
meta device with the parameter counts the README states; DDP on 2 CPU processes works."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from wmkit.core import run_stage
from wmkit.core.testing import moving_squares
from wmkit.tokenizers import (
    IVIDEOGPT_TOKENIZER_SIZES,
    IVideoGPTTokenizer,
    PatchVQTokenizer,
    VidTokTokenizer,
)
from wmkit.tokenizers.cli import command

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_lit_helpers import QUIET, fit_and_test, recorded_data_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = sorted(CONFIGS.glob("*tiny*.yaml"))
REAL = sorted(set(CONFIGS.glob("*.yaml")) - set(TINY))
VIDTOK_REAL = [c for c in REAL if c.name.startswith("vidtok")]
PATCH_VQ_REAL = [c for c in REAL if c.name.startswith("patch_vq")]
IVIDEOGPT_REAL = [c for c in REAL if c.name.startswith("ivideogpt")]

# Parameter counts of each real-size config's tokenizer, as stated in the README.
README_COUNTS = {
    "vidtok_small_kl4_488_crafter.yaml": 6_629_039,
    "vidtok_small_kl4_488_crafter_stage2.yaml": 6_629_039,
    "vidtok_small_kl16_488_crafter.yaml": 6_753_479,
    "vidtok_small_fsq_488_crafter.yaml": 6_622_124,
    "vidtok_small_kl4_188_crafter.yaml": 2_998_187,
    "vidtok_base_kl16_488.yaml": 163_258_023,
    "vidtok_base_fsq_41616_262k.yaml": 204_276_621,
    "patch_vq_crafter36.yaml": 64 * 4 * 4 * 3,
    "ivideogpt-64-ctx2.yaml": 114_159_174,  # the released tokenizer's count
}
REAL_CLASSES = {
    "vidtok": VidTokTokenizer,
    "patch_vq": PatchVQTokenizer,
    "ivideogpt": IVideoGPTTokenizer,
}


def _tokenizer_args(cfg: Path) -> dict:
    return yaml.safe_load(cfg.read_text())["model"]["init_args"]["tokenizer"]["init_args"]


@pytest.fixture(scope="module")
def squares_dataset(tmp_path_factory) -> Path:
    """A recorded dataset (moving squares written as a wmkit dataset) for real configs."""
    return moving_squares(6, 20, 16, seed=0).save(tmp_path_factory.mktemp("data") / "squares")


def test_every_config_is_covered():
    assert {c.name for c in REAL} == set(README_COUNTS)
    assert set(REAL) == set(VIDTOK_REAL) | set(PATCH_VQ_REAL) | set(IVIDEOGPT_REAL)
    assert len(TINY) == 4


@pytest.mark.parametrize("cfg", TINY, ids=lambda p: p.stem)
def test_tiny_config_fits_and_tests(cfg, tmp_path):
    fit_and_test(cfg, ["--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}"])


@pytest.mark.parametrize("cfg", REAL, ids=lambda p: p.stem)
def test_real_config_builds_on_meta_with_stated_size(cfg):
    cls = next(c for prefix, c in REAL_CLASSES.items() if cfg.name.startswith(prefix))
    with torch.device("meta"):
        tok = cls(**_tokenizer_args(cfg))
    assert sum(p.numel() for p in tok.parameters()) == README_COUNTS[cfg.name]


@pytest.mark.parametrize("cfg", PATCH_VQ_REAL, ids=lambda p: p.stem)
def test_patch_vq_real_config_fits_and_tests(cfg, tmp_path, squares_dataset):
    """The real patch-VQ config (k-means seeding, reseeding, export) end to end on a tiny
    recorded dataset at 32x32 (8x8 patches of 4 pixels); the exported codebook is fitted."""
    overrides = recorded_data_overrides(squares_dataset, tmp_path, 2, resolution=32)
    fit_and_test(cfg, overrides, fast_dev_run=2)
    tok = PatchVQTokenizer.from_pretrained(tmp_path / "export")
    assert bool(tok.fitted) and tok.vocab_size == _tokenizer_args(cfg)["codebook_size"]


@pytest.mark.parametrize("cfg", VIDTOK_REAL, ids=lambda p: p.stem)
def test_real_config_fits_and_tests_at_tiny_size(cfg, tmp_path, squares_dataset):
    """The real configs' stage wiring (data module, callbacks, EMA, discriminator, two-stage
    init) runs end to end with the tokenizer shrunk to ``tiny`` on a tiny recorded dataset."""
    args = _tokenizer_args(cfg)
    overrides = [
        "--model.init_args.tokenizer.init_args.size=tiny",
        *recorded_data_overrides(squares_dataset, tmp_path, 1, 32, 9),
        "--trainer.precision=32-true",
        "--trainer.strategy=auto",
    ]
    if yaml.safe_load(cfg.read_text())["model"]["init_args"].get("init_from"):
        VidTokTokenizer(**{**args, "size": "tiny"}).save_pretrained(tmp_path / "stage1")
        overrides.append(f"--model.init_args.init_from={tmp_path / 'stage1'}")
    fit_and_test(cfg, overrides)
    assert VidTokTokenizer.from_pretrained(tmp_path / "export").temporal_compression == args.get(
        "temporal_compression", 4
    )


@pytest.mark.parametrize("cfg", IVIDEOGPT_REAL, ids=lambda p: p.stem)
def test_ivideogpt_real_config_fits_and_tests_at_tiny_size(cfg, tmp_path, squares_dataset):
    """The released-size iVideoGPT config's stage wiring (recorded data, checkpointing,
    export) end to end with the tokenizer shrunk to the tiny size at 16x16; the export loads."""
    tiny = IVIDEOGPT_TOKENIZER_SIZES["tiny"]
    shrink = [f"--model.init_args.tokenizer.init_args.{k}={v}" for k, v in tiny.items()]
    overrides = [
        *shrink,
        *recorded_data_overrides(squares_dataset, tmp_path, 2, 16, 4),
        "--model.init_args.perceptual_weight=0",
        "--trainer.precision=32-true",
    ]
    fit_and_test(cfg, overrides)
    tok = IVideoGPTTokenizer.from_pretrained(tmp_path / "export")
    assert tok.grid == (4, 2) and tok.context_length == 2


def test_cli_command_resumes_from_last_checkpoint(tmp_path):
    cfg = CONFIGS / "vidtok_tiny_kl.yaml"
    common = [
        "-c",
        str(cfg),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=0",
        "--trainer.accelerator=cpu",
        *QUIET,
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={tmp_path / 'ckpt'}",
        "--trainer.callbacks.save_last=true",
    ]
    assert command.run(["fit", *common, "--trainer.max_epochs=1"]) == 0
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_file()
    cli = run_stage(None, None, ["fit", *common, "--trainer.max_epochs=2", f"--ckpt_path={last}"])
    assert cli.trainer.current_epoch == 2
    assert int(cli.model.train_steps) == 4  # 2 batches per epoch, counted across the resume


def test_ddp_two_cpu_processes(tmp_path):
    """`--trainer.strategy ddp --trainer.devices 2` on CPU (gloo): both ranks train and end
    with identical weights; rank 0 exports the tokenizer."""
    cfg = CONFIGS / "vidtok_tiny_kl.yaml"
    script = tmp_path / "ddp_fit.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, torch
        from wmkit.core import run_stage

        if __name__ == "__main__":
            cli = run_stage(None, None, [
                "fit", "-c", "{cfg}",
                "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
                "--trainer.num_sanity_val_steps=0", "--trainer.logger=false",
                "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
                "--model.init_args.perceptual_weight=0",
                "--model.init_args.export_dir={tmp_path / "export"}",
                "--trainer.default_root_dir={tmp_path}",
            ])
            t = cli.trainer
            total = sum(p.double().sum().item() for p in cli.model.tokenizer.parameters())
            with open(f"{tmp_path}/rank{{t.global_rank}}.json", "w") as f:
                json.dump({{"world": t.world_size, "steps": t.global_step, "sum": total}}, f)
        """)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small CPU
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["steps"] == 2 for r in ranks)
    assert ranks[0]["sum"] == ranks[1]["sum"]
    assert (tmp_path / "export" / "model.safetensors").is_file()
