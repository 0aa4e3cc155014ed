"""A scripted world with known dynamics, for tests, benchmarks and examples.

``SquareGoalEnv`` is a real environment (a ``wmkit.core.data.envs.RecordableEnv``): a
coloured square on a dark background, moved by the actions (discrete stay/up/down/left/
right, or continuous ``(dy, dx)`` in [-1, 1]) ``step`` pixels per unit, towards a goal in the
bottom-right corner. The dense reward is ``1 - distance / max_distance``; the goal counts as
reached once the distance is at most ``step`` pixels (reward ``>= success_threshold``).

``SquareGoalWorldModel`` is a ``WorldModel`` that knows these dynamics exactly (it reads the
square's position and colour off the last context frame and renders analytically), optionally
with wrong action gains, so planners and policy evaluation can be tested against ground truth.
``SquareGoalReward`` computes the same reward from any (generated) frame, for world models
without a reward head; ``SquareGoalExpert`` is a greedy scripted policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wmkit.agents.rewards import FrameReward
from wmkit.agents.spaces import obs_to_frames
from wmkit.core import ActionSpec, StepOutput, WorldState, check_world_model_inputs
from wmkit.core.data.envs.base import ExplorationPolicy, RecordableEnv, StickyRandomPolicy
from wmkit.core.world_model import StepwiseRolloutMixin

__all__ = [
    "SquareGoalEnv",
    "SquareGoalExpert",
    "SquareGoalReward",
    "SquareGoalWorldModel",
    "square_geometry",
]

_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float32)
_BACKGROUND = 16


def square_geometry(resolution: int) -> dict[str, float]:
    """Side, step, goal corner and normalising distance of the world at ``resolution``."""
    side = max(2, resolution // 4)
    goal = float(resolution - side)
    return {"side": side, "step": max(1, resolution // 8), "goal": goal,
            "max_distance": math.sqrt(2) * goal}  # fmt: skip


def _spec(continuous: bool) -> ActionSpec:
    if continuous:
        return ActionSpec.continuous(2, -1.0, 1.0, names=("dy", "dx"))
    return ActionSpec.discrete(5, names=("stay", "up", "down", "left", "right"))


def _reward(pos: Tensor, resolution: int) -> Tensor:
    g = square_geometry(resolution)
    dist = torch.linalg.vector_norm(pos - g["goal"], dim=-1)  # [B]
    return 1.0 - dist / g["max_distance"]


def locate_square(frames: Tensor, resolution: int) -> Tensor:
    """Top-left corner ``[B, 2]`` (y, x) of the square in ``frames [B, C, H, W]`` in [-1, 1],
    from the brightness-weighted centroid (robust to blurry generated frames)."""
    side = square_geometry(resolution)["side"]
    light = ((frames + 1) / 2).mean(dim=1)  # [B, H, W]
    w = (light - 0.25).clamp_min(0)
    total = w.sum(dim=(1, 2)).clamp_min(1e-6)
    coords = torch.arange(frames.shape[-1], dtype=frames.dtype, device=frames.device)
    y = (w.sum(dim=2) * coords).sum(dim=1) / total
    x = (w.sum(dim=1) * coords).sum(dim=1) / total
    return torch.stack([y, x], dim=-1) - (side - 1) / 2  # [B, 2]


def _render(pos: Tensor, colour: Tensor, resolution: int) -> Tensor:
    """Positions ``[B, 2]`` and colours ``[B, 3]`` in [-1, 1] → frames ``[B, 3, H, W]``."""
    side = square_geometry(resolution)["side"]
    top = pos.round()  # [B, 2]
    coords = torch.arange(resolution, device=pos.device, dtype=pos.dtype)
    rows = (coords >= top[:, :1]) & (coords < top[:, :1] + side)  # [B, H]
    cols = (coords >= top[:, 1:]) & (coords < top[:, 1:] + side)  # [B, W]
    mask = (rows[:, :, None] & cols[:, None, :]).to(pos.dtype)  # [B, H, W]
    bg = _BACKGROUND / 127.5 - 1
    return bg + mask[:, None] * (colour[:, :, None, None] - bg)  # [B, 3, H, W]


class SquareGoalEnv(RecordableEnv):
    """The square-to-goal world as a real environment.

    Args:
        resolution: frame size (>= 8).
        continuous: continuous ``(dy, dx)`` actions instead of 5 discrete moves.
        max_steps: episode length.
        start: ``"top_left"`` (random in the top-left quadrant) or ``"corner"`` (0, 0).
    """

    def __init__(self, resolution: int = 16, continuous: bool = True, max_steps: int = 16,
                 start: str = "top_left") -> None:  # fmt: skip
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8; got {resolution}")
        if start not in ("top_left", "corner"):
            raise ValueError(f"start must be 'top_left' or 'corner'; got {start!r}")
        self.resolution, self.continuous, self.max_steps = int(resolution), continuous, max_steps
        self.start = start
        self.action_spec = _spec(continuous)
        self.fps = 10.0
        g = square_geometry(self.resolution)
        self.success_threshold = 1.0 - g["step"] / g["max_distance"]
        self._pos = np.zeros(2, np.float32)
        self._colour = np.zeros(3, np.uint8)
        self._t = 0

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"continuous": self.continuous, "max_steps": self.max_steps, "start": self.start}

    def _frame(self) -> np.ndarray:
        g = square_geometry(self.resolution)
        frame = np.full((self.resolution, self.resolution, 3), _BACKGROUND, np.uint8)
        y, x = np.round(self._pos).astype(int)
        frame[y : y + g["side"], x : x + g["side"]] = self._colour
        self._last_frame = frame
        return frame

    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        g = square_geometry(self.resolution)
        self._colour = rng.integers(128, 256, size=3).astype(np.uint8)
        high = max(1, self.resolution // 2 - g["side"])
        self._pos = (
            np.zeros(2, np.float32)
            if self.start == "corner"
            else rng.integers(0, high + 1, size=2).astype(np.float32)
        )
        self._t = 0
        self.truncated = False
        return self._frame()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        g = square_geometry(self.resolution)
        if self.continuous:
            delta = np.clip(np.asarray(action, np.float32).reshape(2), -1, 1)
        else:
            delta = _MOVES[int(np.asarray(action).reshape(()))]
        self._pos = np.clip(self._pos + delta * g["step"], 0, g["goal"]).astype(np.float32)
        self._t += 1
        reward = float(_reward(torch.as_tensor(self._pos[None]), self.resolution)[0])
        self.truncated = self._t >= self.max_steps  # a time limit, not a termination
        return self._frame(), reward, False

    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        return {"random": lambda **kw: StickyRandomPolicy(self.action_spec, **kw)}


class SquareGoalWorldModel(StepwiseRolloutMixin):
    """A ``WorldModel`` with the square world's dynamics built in (no learning).

    Args:
        resolution: frame size.
        continuous: the action kind, as in ``SquareGoalEnv``.
        action_gain: multiplies every move (1.0 = exact; other values model a wrong model).
        predict_reward: return the analytic reward (else ``StepOutput.reward`` is ``None``).
    """

    def __init__(self, resolution: int = 16, continuous: bool = True, action_gain: float = 1.0,
                 predict_reward: bool = True) -> None:  # fmt: skip
        self.resolution = int(resolution)
        self.continuous = continuous
        self.action_gain = float(action_gain)
        self.predict_reward = predict_reward
        self._action_spec = _spec(continuous)

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        last = context_frames[:, -1]  # [B, C, H, W]
        pos = locate_square(last, self.resolution).round()
        g = square_geometry(self.resolution)
        pos = pos.clamp(0, g["goal"])
        centre = (pos + (g["side"] - 1) / 2).round().long()  # [B, 2]
        colour = last[torch.arange(last.shape[0]), :, centre[:, 0], centre[:, 1]]  # [B, 3]
        return WorldState(t=context_frames.shape[1], frames=context_frames[:, -1:],
                          extra={"pos": pos, "colour": colour})  # fmt: skip

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        g = square_geometry(self.resolution)
        pos = state.extra["pos"]
        if self.continuous:
            delta = action.float().to(pos.device)
        else:
            delta = torch.as_tensor(_MOVES, device=pos.device)[action.long().to(pos.device)]
        pos = (pos + self.action_gain * delta * g["step"]).clamp(0, g["goal"])
        frame = _render(pos, state.extra["colour"], self.resolution)
        reward = _reward(pos, self.resolution) if self.predict_reward else None
        new = WorldState(t=state.t + 1, frames=frame[:, None],
                         extra={"pos": pos, "colour": state.extra["colour"]})  # fmt: skip
        return StepOutput(frame=frame, reward=reward, state=new)


class SquareGoalReward(FrameReward):
    """The square world's reward read off the next frame (for models without a reward head).

    Frames show the pixel-rounded position, so this differs from the env's reward (computed
    on the exact position) by at most half a pixel's worth of distance.

    Args:
        resolution: frame size.
    """

    def __init__(self, resolution: int = 16) -> None:
        self.resolution = int(resolution)

    def __call__(self, frame: Tensor, action: Tensor, next_frame: Tensor) -> Tensor:
        g = square_geometry(self.resolution)
        pos = locate_square(next_frame, self.resolution).clamp(0, g["goal"])
        return _reward(pos, self.resolution)


class SquareGoalExpert:
    """Greedy scripted policy: move towards the goal, plus optional random actions.

    Args:
        resolution: frame size.
        continuous: the action kind.
        random_prob: per-step probability of a uniformly random action instead.
        seed: generator seed.
    """

    def __init__(self, resolution: int = 16, continuous: bool = True, random_prob: float = 0.0,
                 seed: int = 0) -> None:  # fmt: skip
        self.resolution, self.continuous, self.random_prob = resolution, continuous, random_prob
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        g = square_geometry(self.resolution)
        pos = locate_square(obs_to_frames(obs), self.resolution).numpy()  # [B, 2]
        gap = g["goal"] - pos
        b = obs.shape[0]
        explore = self.rng.random(b) < self.random_prob
        if self.continuous:
            act = np.clip(gap / g["step"], -1, 1).astype(np.float32)
            act[explore] = self.rng.uniform(-1, 1, size=(int(explore.sum()), 2))
            return act
        down_first = np.abs(gap[:, 0]) >= np.abs(gap[:, 1])
        act = np.where(down_first, np.where(gap[:, 0] > 0, 2, 1), np.where(gap[:, 1] > 0, 4, 3))
        act[np.abs(gap).max(axis=1) < 0.5] = 0
        act[explore] = self.rng.integers(0, 5, size=int(explore.sum()))
        return act.astype(np.int64)
