"""Configs and the ``wmkit latent-action`` command: every tiny config fits and tests with
``fast_dev_run``; real-size configs build on the meta device with the README's parameter
counts; ``probe`` writes its report and plot."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from wmkit.core.testing import check_config_runs, moving_squares
from wmkit.latent_action import LatentActionAutoencoder
from wmkit.latent_action.cli import command

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
REAL_SIZE_PARAMS = {"crafter_small.yaml": 1_593_172, "metaworld_small.yaml": 1_593_172}


def test_every_tiny_config_fits_and_tests(tmp_path):
    tiny = sorted(CONFIGS.glob("tiny*.yaml"))
    assert len(tiny) == 2
    for cfg in tiny:
        check_config_runs(cfg, tmp_path)


@pytest.mark.parametrize("name", sorted(REAL_SIZE_PARAMS))
def test_real_size_configs_build_on_meta(name):
    config = yaml.safe_load((CONFIGS / name).read_text())
    assert config["data"]["class_path"].endswith("EpisodeDataModule")
    assert config["data"]["init_args"]["with_steps"] is False  # frames only
    parser = ArgumentParser()
    parser.add_argument("--model", type=LatentActionAutoencoder)
    with torch.device("meta"):
        built = parser.instantiate_classes(
            parser.parse_object({"model": config["model"]["init_args"]["model"]})
        ).model
    assert sum(p.numel() for p in built.parameters()) == REAL_SIZE_PARAMS[name]


def test_command_dispatches_fit_and_probe(tmp_path, capsys):
    export = tmp_path / "lam"
    code = command.run(
        [
            "fit",
            "-c",
            str(CONFIGS / "tiny.yaml"),
            "--trainer.fast_dev_run=2",
            f"--trainer.default_root_dir={tmp_path}",
            f"--model.init_args.export_dir={export}",
            *QUIET,
        ]
    )
    assert code == 0 and (export / "model.safetensors").is_file()

    eps = moving_squares(6, 6, 16, seed=2)
    eps.save(tmp_path / "data", frame_format="npz")
    out = tmp_path / "probe"
    code = command.run(
        [
            "probe",
            "--model",
            str(export),
            "--data",
            str(tmp_path / "data"),
            "--steps",
            "20",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["metric"] == "accuracy" and report["num_test"] == 10
    assert set(report["probes"]) == {"linear", "mlp", "random_linear", "random_mlp"}
    assert (out / "predictiveness.png").stat().st_size > 1000
    assert "random_linear" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        command.run(["probe", "--model", str(export)])  # --data missing
