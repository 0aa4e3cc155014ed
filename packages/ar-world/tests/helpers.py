"""Shared tiny inputs for the ar-world tests."""

from __future__ import annotations

import torch

from wmkit.ar_world import ARWorldModel
from wmkit.core import to_float_video
from wmkit.core.testing import ToyTokenizer, moving_squares


def squares(num: int = 2, length: int = 6, continuous: bool = False, seed: int = 0):
    eps = moving_squares(num, length, 16, continuous=continuous, seed=seed)
    return eps, to_float_video(eps.frames), torch.from_numpy(eps.actions)


def tiny_model(spec, **kwargs) -> ARWorldModel:
    kwargs.setdefault("max_frames", 4)
    torch.manual_seed(0)
    return ARWorldModel(spec, ToyTokenizer(patch=4, levels=2), **kwargs).eval()
