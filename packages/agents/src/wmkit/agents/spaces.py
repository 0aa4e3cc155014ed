"""Gymnasium spaces from wmkit's ``ActionSpec`` and conversions between numpy and torch.

Gymnasium and stable-baselines3 speak numpy (``Discrete``/``MultiDiscrete``/``Box`` actions,
``uint8 [H, W, C]`` image observations); world models speak torch (actions
``[B, *spec.action_shape]``, frames ``float [B, C, H, W]`` in [-1, 1]). These helpers are the
one place that translates.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from wmkit.core import ActionSpec, to_float_video, to_uint8_frames

__all__ = [
    "action_space_from_spec",
    "actions_to_numpy",
    "actions_to_torch",
    "frames_to_obs",
    "image_observation_space",
    "obs_to_frames",
]


def action_space_from_spec(spec: ActionSpec) -> spaces.Space:
    """``Discrete(n)``, ``MultiDiscrete(nvec)`` or a float32 ``Box(low, high, shape)``."""
    if spec.kind == "discrete":
        return spaces.Discrete(int(spec.n))  # type: ignore[arg-type]
    if spec.kind == "multi_discrete":
        return spaces.MultiDiscrete(np.asarray(spec.nvec, dtype=np.int64))
    low = np.asarray(spec.low, np.float32).reshape(spec.action_shape)
    high = np.asarray(spec.high, np.float32).reshape(spec.action_shape)
    return spaces.Box(low=low, high=high, dtype=np.float32)


def image_observation_space(height: int, width: int, channels: int = 3) -> spaces.Box:
    """``Box(0, 255, (H, W, C), uint8)``: the image layout SB3's ``CnnPolicy`` recognises."""
    return spaces.Box(low=0, high=255, shape=(height, width, channels), dtype=np.uint8)


def actions_to_torch(
    spec: ActionSpec, actions: np.ndarray | Tensor | int | float, batch: int, device=None
) -> Tensor:
    """Numpy actions for ``batch`` envs → ``[batch, *spec.action_shape]`` with the spec's dtype.

    Continuous actions are clipped into the box (learners' Gaussian noise can leave it by a
    rounding error); discrete ones are validated by the world model.
    """
    x = torch.as_tensor(np.asarray(actions) if not isinstance(actions, Tensor) else actions)
    expected = batch * max(1, int(np.prod(spec.action_shape)))
    if x.numel() != expected:
        raise ValueError(
            f"actions for {batch} env(s) must have {expected} values ({spec.describe()}); "
            f"got shape {tuple(x.shape)}"
        )
    x = x.reshape(batch, *spec.action_shape).to(device=device)
    if spec.kind == "continuous":
        low, high = spec._bounds(x)
        return torch.minimum(torch.maximum(x.float(), low), high)
    if x.is_floating_point():
        rounded = x.round()
        if not torch.equal(rounded, x):
            raise TypeError(f"actions must be integers for {spec.describe()}; got {x.dtype}")
        x = rounded
    return x.long()


def actions_to_numpy(spec: ActionSpec, actions: Tensor) -> np.ndarray:
    """``[B, *action_shape]`` torch actions → numpy (int64 or float32) with the same shape."""
    dtype = np.float32 if spec.kind == "continuous" else np.int64
    return actions.detach().cpu().numpy().astype(dtype)


def frames_to_obs(frames: Tensor) -> np.ndarray:
    """Model frames ``float [B, C, H, W]`` in [-1, 1] → observations ``uint8 [B, H, W, C]``."""
    return to_uint8_frames(frames.unsqueeze(1))[:, 0].cpu().numpy()


def obs_to_frames(obs: np.ndarray, device=None) -> Tensor:
    """Observations ``uint8 [B, H, W, C]`` → model frames ``float [B, C, H, W]`` in [-1, 1]."""
    if not isinstance(obs, np.ndarray) or obs.dtype != np.uint8 or obs.ndim != 4:
        got = f"{getattr(obs, 'dtype', type(obs).__name__)}{getattr(obs, 'shape', '')}"
        raise ValueError(f"observations must be a numpy uint8 [B, H, W, C] array; got {got}")
    return to_float_video(obs[:, None], device=device)[:, 0]  # [B, C, H, W]
