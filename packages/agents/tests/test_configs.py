"""Shipped configs: the tiny one runs `wmkit agents mbrl`; the Meta-World one parses and its
world model builds on the meta device with the parameter count the README states."""

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from wmkit.agents.cli import build_parser, command, run_mbrl

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_tiny_config_runs_mbrl_and_writes_results(tmp_path):
    result = run_mbrl(["-c", str(CONFIGS / "mbpo_tiny.yaml"), "--iterations=1",
                       "--mbpo.warmup_steps=20", "--mbpo.init_model_steps=2",
                       "--mbpo.real_steps_per_iter=10", "--mbpo.rollout_batch=4",
                       "--mbpo.eval_episodes=1", f"--out={tmp_path}"])  # fmt: skip
    assert result.real_steps == [30] and result.imagined[-1] > 0
    assert (tmp_path / "result.json").is_file() and (tmp_path / "agent.zip").is_file()
    assert (tmp_path / "world_model" / "model.safetensors").is_file()


def test_metaworld_reference_config_parses_and_builds_on_meta():
    cfg_path = CONFIGS / "mbpo_metaworld_reach.yaml"
    cfg = build_parser().parse_args(["-c", str(cfg_path)])  # every key is an MBPO argument
    assert cfg.mbpo.env == "metaworld" and cfg.mbpo.env_kwargs["task"] == "reach-v3"
    parser = ArgumentParser()
    parser.add_argument("--model", type=L.LightningModule)
    raw = yaml.safe_load(cfg_path.read_text())["mbpo"]["world_model"]
    with torch.device("meta"):
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        module = instantiate(parser.parse_object({"model": raw})).model
    n = sum(p.numel() for p in module.parameters())
    assert n == 423_684  # README: 0.42 M
    assert all(p.device.type == "meta" for p in module.parameters())


def test_cli_help_and_unknown_subcommand(capsys):
    assert command.run(["--help"]) == 0
    assert "mbrl" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown subcommand"):
        command.run(["fly"])
