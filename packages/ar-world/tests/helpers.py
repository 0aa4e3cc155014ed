"""Shared tiny inputs and models for the ar-world tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.legacy_config import upgrade_flat_config
from wmkit.core import to_float_video
from wmkit.core.testing import ToyCompressiveTokenizer, ToyTokenizer, moving_squares


def squares(num: int = 2, length: int = 6, continuous: bool = False, seed: int = 0):
    eps = moving_squares(num, length, 16, continuous=continuous, seed=seed)
    return eps, to_float_video(eps.frames), torch.from_numpy(eps.actions)


def flat_model(spec, tokenizer: Any, **flat: Any) -> ARWorldModel:
    """A model named by the flat arguments of 0.1.x (``size``, ``decoding``, ``window``,
    ``temperature``, ...), built through ``upgrade_flat_config`` (the old way)."""
    return ARWorldModel(
        **upgrade_flat_config({"action_spec": spec, "tokenizer": tokenizer, **flat})
    )


def tiny_model(spec, **flat: Any) -> ARWorldModel:
    flat.setdefault("max_frames", 4)
    torch.manual_seed(0)
    return flat_model(spec, ToyTokenizer(patch=4, levels=2), **flat).eval()


def compressive_model(spec, **flat: Any) -> ARWorldModel:
    """Two context frames of 4x4 tokens, future frames of 2x2 (iVideoGPT's layout)."""
    flat.setdefault("max_frames", 5)
    torch.manual_seed(0)
    tok = ToyCompressiveTokenizer(patch=4, future_patch=2, levels=2, context_frames=2)
    return flat_model(spec, tok, **flat).eval()


def spy(obj: Any, method: str, record: Callable[..., Any]) -> list[Any]:
    """Wrap ``obj.method`` so that each call first appends ``record(*args)`` to the returned
    list (what a decoding pass was fed, which frames were finished, ...)."""
    calls: list[Any] = []
    original = getattr(obj, method)

    def wrapped(*args: Any) -> Any:
        calls.append(record(*args))
        return original(*args)

    setattr(obj, method, wrapped)
    return calls
