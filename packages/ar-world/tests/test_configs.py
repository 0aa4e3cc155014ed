"""Every tiny config runs fit and test; real-size configs build on the meta device with the
parameter counts the README states."""

import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from stub_tokenizer import ShapeTokenizer

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.cli import command
from wmkit.core import ActionSpec
from wmkit.core.testing import check_config_runs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
# Crafter configs with an 8192-token tokenizer at 8x down (64x64 -> 8x8 tokens); the README
# table lists the same numbers.
PARAMS = {"300M": 325_197_826, "700M": 704_851_970, "1.2B": 1_266_958_338}


@pytest.mark.parametrize("name", ["tiny", "tiny_embedding", "tiny_compressive"])
def test_tiny_config_fits_and_tests(name, tmp_path):
    check_config_runs(CONFIGS / f"{name}.yaml", tmp_path)


def test_stage_command(tmp_path):
    assert "autoregressive" in command.help
    argv = ["fit", "-c", str(CONFIGS / "tiny.yaml"), "--trainer.fast_dev_run=1", *QUIET]
    assert command.run([*argv, f"--trainer.default_root_dir={tmp_path}"]) == 0


@pytest.mark.parametrize("size", sorted(PARAMS))
def test_real_size_builds_on_meta(size):
    cfg = yaml.safe_load((CONFIGS / f"crafter_{size}.yaml").read_text())
    assert cfg["data"]["class_path"].endswith("EpisodeDataModule")
    args = dict(cfg["model"]["init_args"]["model"]["init_args"])
    assert isinstance(args["tokenizer"], str)  # a saved tokenizer directory
    args["action_spec"] = ActionSpec.from_dict(args["action_spec"])
    args["tokenizer"] = ShapeTokenizer(8192, 8)
    with torch.device("meta"):
        model = ARWorldModel(**args)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[size]
