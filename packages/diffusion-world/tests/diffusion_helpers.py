"""Shared helpers for the diffusion-world tests."""

from __future__ import annotations

import torch
from torch import nn


def randomised(model: nn.Module, std: float = 0.2) -> nn.Module:
    """adaLN-Zero and the zero output start as identity/zero, which would make every output
    equal; draw those parameters at random (seeded) to test the real paths."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, std)
    return model


def flat_model(action_spec, **flat):
    """A ``DiffusionWorldModel`` from its flat arguments."""
    from wmkit.diffusion_world import DiffusionWorldModel

    return DiffusionWorldModel(action_spec, **flat)
