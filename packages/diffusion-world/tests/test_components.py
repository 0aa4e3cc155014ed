"""DiffusionWorldModel as components: a network defined here, named by ``class_path`` in a YAML
config, trained through the LightningModule and stepped; objectives as typed, serialisable
choices; 0.1.x flat configs map onto the components."""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor, nn

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import moving_squares
from wmkit.core.testing.toy_lit import MovingSquaresDataModule
from wmkit.diffusion_world import (
    DDPMObjective,
    DiffusionWorldModel,
    EDMObjective,
    FlowObjective,
    build_objective,
)
from wmkit.diffusion_world.legacy_config import is_flat_config
from wmkit.diffusion_world.lit import DiffusionForcingModule

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

SPEC = ActionSpec.discrete(5)


class TinyCausalConvNet(nn.Module):
    """A per-frame conv net, conditioned on the noise level and the action: causal because
    each frame is processed alone (a new network is this class and a line of YAML)."""

    def __init__(self, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.cond_dim = width
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.level = nn.Linear(1, width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        b, t = x.shape[:2]
        h = self.inp(x.flatten(0, 1))  # [B T, W, H, W]
        emb = self.level(timesteps.float().reshape(-1, 1) / 1000) + cond.flatten(0, 1)
        h = torch.relu(h + emb[:, :, None, None])
        return self.out(h).unflatten(0, (b, t))  # [B, T, C, H, W]


# the test module's own name (a path with dashes under importlib) is no import path: alias it
NETWORK_MODULE = "wmkit_diffusion_world_test_components"
sys.modules[NETWORK_MODULE] = sys.modules[__name__]

CONFIG = f"""
model:
  class_path: {DiffusionForcingModule.__module__}.DiffusionForcingModule
  init_args:
    lr: 0.01
    model:
      class_path: wmkit.diffusion_world.DiffusionWorldModel
      init_args:
        action_spec: {{kind: discrete, n: 5}}
        network:
          class_path: {NETWORK_MODULE}.TinyCausalConvNet
          init_args: {{channels: 3, width: 8}}
        objective:
          class_path: wmkit.diffusion_world.FlowObjective
          init_args: {{shift: 2.0}}
        image_size: 16
        sampling: {{num_steps: 2, context_window: 4}}
"""


def test_a_network_defined_here_trains_from_yaml_and_steps(tmp_path):
    from lightning.pytorch.cli import LightningCLI

    (tmp_path / "cfg.yaml").write_text(CONFIG)
    cli = LightningCLI(
        DiffusionForcingModule,
        MovingSquaresDataModule,
        subclass_mode_model=True,
        run=False,
        args=[
            "--config", str(tmp_path / "cfg.yaml"),
            "--data.num_episodes", "4", "--data.length", "6", "--data.batch_size", "4",
            "--trainer.max_steps", "3", "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.limit_val_batches", "0",
            "--trainer.default_root_dir", str(tmp_path),
        ],
    )  # fmt: skip
    model = cli.model.model
    assert isinstance(model.network, TinyCausalConvNet)
    assert model.denoiser.objective == FlowObjective(shift=2.0)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert any(not torch.equal(before[k], v) for k, v in model.network.state_dict().items())

    eps = moving_squares(num_episodes=2, length=4, size=16)
    frames, actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    model.eval()
    state = model.reset(frames[:, :2], actions[:, :1])
    for i in range(3):
        out = model.step(state, actions[:, 1 + i])
        assert out.frame.shape == (2, 3, 16, 16) and out.frame.abs().max() <= 1
        state = out.state
    assert state.x.shape[1] == 3  # context_window - 1

    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["network"]["class_path"].endswith("TinyCausalConvNet")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "saved")
    torch.manual_seed(0)
    a = model.rollout(frames[:, :2], actions[:, 1:3]).frames
    torch.manual_seed(0)
    assert torch.equal(again.rollout(frames[:, :2], actions[:, 1:3]).frames, a)


@pytest.mark.parametrize(
    "objective",
    [DDPMObjective(prediction_type="epsilon", sampler="euler"), EDMObjective(sigma_data=0.2),
     FlowObjective(shift=3.0)],
)  # fmt: skip
def test_objectives_are_json_configs(objective):
    config = json.loads(json.dumps(objective.to_config()))
    assert build_objective(config) == objective
    with pytest.raises(ValueError, match="class_path"):
        build_objective({"kind": "edm"})


def test_the_flat_0_1_arguments_build_the_same_model_as_the_components():
    flat = {"objective": "edm", "residual": True, "sigma_data": 0.1, "num_sampling_steps": 1,
            "context_window": 4, "reward_head": True, "done_head": True,
            "reward_hidden": 8}  # fmt: skip
    upgraded = DiffusionWorldModel.upgrade_config(flat)
    assert upgraded["sampling"]["num_steps"] == 1 and upgraded["heads"]["hidden"] == 8
    assert upgraded["objective"]["init_args"]["sigma_data"] == 0.1
    torch.manual_seed(0)
    old = flat_model(SPEC, **flat)
    torch.manual_seed(0)
    new = DiffusionWorldModel(
        SPEC,
        network={"class_path": "wmkit.diffusion_world.SpatioTemporalDiT",
                 "init_args": {"in_channels": 6, "out_channels": 3, "image_size": 16}},
        objective=EDMObjective(sigma_data=0.1),
        residual=True,
        sampling={"num_steps": 1, "context_window": 4},
        heads={"reward": True, "done": True, "hidden": 8},
    )  # fmt: skip
    old_state, new_state = old.state_dict(), new.state_dict()
    assert old_state.keys() == new_state.keys()
    assert all(torch.equal(old_state[k], new_state[k]) for k in old_state)


def test_the_shipped_yaml_configs_use_components():
    checked = 0
    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        model = yaml.safe_load(path.read_text())["model"]["init_args"]["model"]
        if model["class_path"] != "wmkit.diffusion_world.DiffusionWorldModel":
            continue  # DIAMOND's configs compose their own parts (test_diamond_*.py)
        checked += 1
        args = model["init_args"]
        assert isinstance(args["network"], dict) and "class_path" in args["network"], path.name
        assert not is_flat_config(args), path.name
    assert checked >= 8


def test_a_network_object_plugs_in_but_only_a_spec_saves(tmp_path):
    torch.manual_seed(0)
    model = DiffusionWorldModel(SPEC, network=TinyCausalConvNet(width=4), sampling={"num_steps": 1})
    eps = moving_squares(num_episodes=2, length=4, size=16)
    frames, actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    assert model.loss(frames, actions).loss.isfinite()
    assert model.eval().rollout(frames[:, :2], actions[:, 1:3]).frames.shape == (2, 2, 3, 16, 16)
    with pytest.raises(TypeError, match="network"):
        model.save_pretrained(tmp_path / "m")


def test_a_network_without_cond_dim_is_refused():
    with pytest.raises(ValueError, match="cond_dim"):
        DiffusionWorldModel(SPEC, network={"class_path": "torch.nn.Identity"})
