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
