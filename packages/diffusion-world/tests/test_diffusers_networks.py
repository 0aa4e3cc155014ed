"""What every causalized diffusers network (SVD UNet, UNet3D, Wan) shares in the world model:
gradient checkpointing gives the same gradients, the Diffusion Forcing loss falls on a fixed
batch, and a world model built from a pretrained network saves without its directory."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import check_loss_decreases, moving_squares
from wmkit.diffusion_world import (
    DiffusionWorldModel,
    causalize,
)

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import diffusers_networks, flat_model

SPEC = ActionSpec.discrete(5)
NETWORKS = diffusers_networks()


def _base(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cls, config = NETWORKS[kind]
    base = cls(**config(3))
    with torch.no_grad():  # zero-initialised layers (UNet3D's conv4) would hide their paths
        for p in base.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return base.eval()


@pytest.mark.parametrize("kind", NETWORKS)
def test_gradient_checkpointing_gives_the_same_gradients(kind):
    net = causalize(_base(kind), cond_dim=16).train()
    for m in net.modules():  # dropout would differ between the runs
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    g = torch.Generator().manual_seed(0)
    x, ts = torch.randn(1, 3, 3, 8, 8, generator=g), torch.randint(0, 1000, (1, 3), generator=g)
    cond = torch.randn(1, 3, 16, generator=g)

    def grads():
        net.zero_grad()
        net(x, ts, cond).square().mean().backward()
        return [p.grad.clone() for p in net.parameters() if p.grad is not None]

    plain = grads()
    net.set_gradient_checkpointing(True)
    checkpointed = grads()
    assert len(checkpointed) == len(plain) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


@pytest.mark.parametrize("kind", ["unet3d", "wan"])
def test_world_model_loss_goes_down_on_a_fixed_batch(kind):
    torch.manual_seed(0)
    eps = moving_squares(num_episodes=4, length=4, size=8)
    frames, actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    model = flat_model(SPEC, network=kind, image_size=8)
    check_loss_decreases(  # same noise and levels each step: a fixed objective
        model, lambda: model.loss(frames, actions).loss, steps=7, factor=0.7, eval_seed=1,
        train_seed=1,
    )  # fmt: skip


@pytest.mark.parametrize("kind, key, value", [("unet3d", "block_out_channels", [16, 32]),
                                              ("wan", "num_layers", 2)])  # fmt: skip
def test_a_world_model_from_a_pretrained_network_saves_without_its_directory(
    tmp_path, kind, key, value
):
    _base(kind, seed=3).save_pretrained(tmp_path / "pretrained")
    model = flat_model(
        SPEC, network=kind, image_size=8, pretrained_network=str(tmp_path / "pretrained")
    ).eval()
    model.save_pretrained(tmp_path / "world")
    config = json.loads((tmp_path / "world" / "config.json").read_text())
    args = config["network"]["init_args"]
    assert args["pretrained"] is None  # the architecture is in its config
    assert args["config"][key] == value
    shutil.rmtree(tmp_path / "pretrained")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "world")
    g = torch.Generator().manual_seed(0)
    x, ts = torch.randn(1, 3, 3, 8, 8, generator=g), torch.randint(0, 1000, (1, 3), generator=g)
    cond = torch.randn(1, 3, model.network.cond_dim, generator=g)
    with torch.no_grad():
        # weights equal bit for bit; outputs to float rounding (tensors loaded from another
        # file may take another kernel path on some CPUs)
        for (name, a), b in zip(again.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), name
        torch.testing.assert_close(
            again.network(x, ts, cond), model.network(x, ts, cond), atol=1e-5, rtol=0
        )
