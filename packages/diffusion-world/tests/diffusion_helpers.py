"""Shared helpers for the diffusion-world tests."""

from __future__ import annotations

import torch
from torch import nn


def randomised(model: nn.Module, std: float = 0.2, seed: int | None = 0) -> nn.Module:
    """adaLN-Zero and the zero output start as identity/zero, which would make every output
    equal; draw those parameters at random (from ``seed``; ``None``: the global stream as it
    stands) to test the real paths."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, std)
    return model


def network_inputs(t: int = 4, batch: int = 1, cond_dim: int = 16, size: int = 8):
    """Seeded inputs of a denoising network: ``x [B, T, 3, size, size]``, timesteps
    ``[B, T]`` in [0, 1000) and per-frame conditions ``[B, T, cond_dim]``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, t, 3, size, size, generator=g)
    ts = torch.randint(0, 1000, (batch, t), generator=g)
    cond = torch.randn(batch, t, cond_dim, generator=g)
    return x, ts, cond


def flat_model(action_spec, **flat):
    """A ``DiffusionWorldModel`` from 0.1.x's flat arguments (``network="dit"``,
    ``objective="edm"``, ``num_sampling_steps``, ...), through ``upgrade_config``, the path an
    old ``config.json`` takes."""
    from wmkit.diffusion_world import DiffusionWorldModel

    config = DiffusionWorldModel.upgrade_config({"action_spec": action_spec, **flat})
    return DiffusionWorldModel(**config)


def write_flat_config(directory, **flat) -> None:
    """Rewrite a saved model's ``config.json`` the 0.1.x way: its action spec and class, then
    only the flat arguments ``flat`` (the rest take 0.1.x's defaults on load)."""
    import json
    from pathlib import Path

    path = Path(directory) / "config.json"
    saved = json.loads(path.read_text())
    keep = ("_wmkit_class", "_wmkit_format", "action_spec")
    path.write_text(json.dumps({**{k: saved[k] for k in keep}, **flat}))


def check_pretrained_network(
    net: nn.Module, folder, load, inputs, action_spec, network: type, wrong: str
) -> nn.Module:
    """``net`` saved to ``folder`` and read back by ``load(folder)`` gives the same
    causalized outputs on ``inputs`` (``x, timesteps``); ``folder`` as the
    ``pretrained_network`` of a world model builds a ``network`` (the causalized class) on it,
    and as that of a ``wrong`` one (``"unet3d"``, ``"svd_unet"``) fails naming the class
    ``wrong`` needs. Returns the loaded network."""
    import copy

    import pytest

    from wmkit.diffusion_world import causalize

    net.save_pretrained(folder)
    loaded = load(folder)
    x, ts = inputs
    with torch.no_grad():
        assert torch.equal(causalize(copy.deepcopy(net))(x, ts), causalize(loaded.eval())(x, ts))
    needs = {"svd_unet": "UNetSpatioTemporalConditionModel", "unet3d": "UNet3DConditionModel"}
    with pytest.raises(ValueError, match=f"expected a {needs[wrong]}"):
        flat_model(action_spec, network=wrong, pretrained_network=str(folder))
    name = {"CausalUNet3D": "unet3d", "CausalWanTransformer": "wan"}[network.__name__]
    model = flat_model(action_spec, network=name, image_size=8, pretrained_network=str(folder))
    assert isinstance(model.network, network)
    return loaded


def diffusers_networks() -> dict:
    """The causalized diffusers networks by name: ``(diffusers class, tiny config function)``."""
    from diffusers import (
        UNet3DConditionModel,
        UNetSpatioTemporalConditionModel,
        WanTransformer3DModel,
    )

    from wmkit.diffusion_world import tiny_svd_unet_config, tiny_unet3d_config, tiny_wan_config

    return {
        "svd_unet": (UNetSpatioTemporalConditionModel, tiny_svd_unet_config),
        "unet3d": (UNet3DConditionModel, tiny_unet3d_config),
        "wan": (WanTransformer3DModel, tiny_wan_config),
    }
