"""Shared fixtures: converted weights in a temporary cache, moving-squares clips, an oracle
world model and a cheap video feature extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core import ActionSpec, StepOutput, WorldState, to_float_video
from wmkit.core.testing import moving_squares
from wmkit.core.testing.moving_squares import MOVES
from wmkit.core.weights import convert_lpips
from wmkit.core.world_model import StepwiseRolloutMixin


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, str]:
    """LPIPS-alex and I3D converted once into a temporary weights cache."""
    from wmkit.eval.i3d import convert_i3d

    root = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMKIT_WEIGHTS_DIR", str(root))
        return {"dir": str(root), "lpips": str(convert_lpips("alex")), "i3d": str(convert_i3d())}


@pytest.fixture(scope="session")
def squares():
    """12 moving-squares episodes of 12 frames, 16x16, as model-side tensors."""
    eps = moving_squares(num_episodes=12, length=12, size=16, seed=3)
    frames = torch.cat([to_float_video(f) for f in eps.frames])  # [N, T, 3, 16, 16]
    return frames, torch.from_numpy(eps.actions), eps.action_spec


class OracleSquares(StepwiseRolloutMixin):
    """Scripted world model that knows moving squares' dynamics: finds the square in the last
    frame and moves it by the action (so it is exact and fully controllable)."""

    def __init__(self, action_spec: ActionSpec, size: int = 16) -> None:
        self.action_spec = action_spec
        self.side, self.step_px = max(2, size // 4), max(1, size // 8)

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        return WorldState(t=context_frames.shape[1], frames=context_frames[:, -1:])

    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        last = state.frames[:, -1]
        out = torch.empty_like(last)
        for b in range(last.shape[0]):
            img = last[b]
            mask = (img - img.amin(dim=(1, 2), keepdim=True)).abs().sum(0) > 1e-3
            ys, xs = torch.nonzero(mask, as_tuple=True)
            background = img.amin(dim=(1, 2))
            out[b] = background.view(-1, 1, 1)
            if len(ys) == 0:
                continue
            colour = img[:, ys[0], xs[0]]
            h = img.shape[-1]
            y, x = int(ys.min()), int(xs.min())
            dy, dx = MOVES[int(action[b])] * self.step_px
            y = int(np.clip(y + dy, 0, h - self.side))
            x = int(np.clip(x + dx, 0, h - self.side))
            out[b, :, y : y + self.side, x : x + self.side] = colour.view(-1, 1, 1)
        return StepOutput(out, None, WorldState(t=state.t + 1, frames=out.unsqueeze(1)))


@pytest.fixture
def oracle():
    return OracleSquares


class CheapFeatures(nn.Module):
    """A fixed random conv net, ``[B, T, C, H, W] → [B, 16]``: stands in for I3D where only
    the FVD machinery is under test (I3D at 224x224 takes seconds per clip on a CPU)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(16, 3, 3, 3, 3, generator=g) * 0.3)

    def forward(self, video: Tensor) -> Tensor:
        x = rearrange(video, "b t c h w -> b c t h w")
        return F.relu(F.conv3d(x, self.w)).mean(dim=(2, 3, 4))


@pytest.fixture
def cheap_features():
    return CheapFeatures()
