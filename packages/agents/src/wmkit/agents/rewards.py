"""Rewards computed from frames, for world models without a reward head.

A :class:`FrameReward` is ``(frame [B, C, H, W], action [B, ...], next_frame) -> reward [B]``.
Any callable with that signature works wherever wmkit.agents takes a ``reward_fn``; the base
class exists so YAML configs can name one by ``class_path``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from wmkit.core import check_video

__all__ = ["FrameReward", "GoalImageReward"]


class FrameReward(ABC):
    """Reward from a transition's frames (and action)."""

    @abstractmethod
    def __call__(self, frame: Tensor, action: Tensor, next_frame: Tensor) -> Tensor:
        """``frame``, ``next_frame`` ``float [B, C, H, W]`` in [-1, 1] → reward ``[B]``."""


class GoalImageReward(FrameReward):
    """Negative mean squared distance between the next frame and a goal image (VP2-style).

    Args:
        goal: goal image ``float [C, H, W]`` or one per env ``[B, C, H, W]``, in [-1, 1].
        blur: box-blur both images with this odd kernel size first (stride 1); blurred
            objects overlap from further away, so the distance keeps changing as an object
            approaches its goal instead of being flat until they touch (VP2 compares raw
            pixels, i.e. ``blur=1``).
    """

    def __init__(self, goal: Tensor, blur: int = 1) -> None:
        g = goal if goal.ndim == 4 else goal[None]
        check_video(g[:, None], "goal")
        if blur < 1 or blur % 2 != 1:
            raise ValueError(f"blur must be an odd kernel size >= 1; got {blur}")
        self.goal, self.blur = g, int(blur)

    def distance(self, frames: Tensor, goal_index: Tensor | None = None) -> Tensor:
        """Mean squared distance ``[N]`` of ``frames [N, C, H, W]`` to the goal (goal
        ``goal_index[i]`` for frame ``i`` when there are several goals)."""
        goal = self.goal.to(frames.device)
        if goal.shape[0] > 1:
            if goal_index is None:
                if frames.shape[0] != goal.shape[0]:
                    raise ValueError(
                        f"{goal.shape[0]} goal images need {goal.shape[0]} frames or a "
                        f"goal_index; got {frames.shape[0]} frames"
                    )
                goal_index = torch.arange(frames.shape[0], device=frames.device)
            goal = goal[goal_index]
        if self.blur > 1:
            k = self.blur
            frames = F.avg_pool2d(frames, k, stride=1, padding=k // 2, count_include_pad=False)
            goal = F.avg_pool2d(goal, k, stride=1, padding=k // 2, count_include_pad=False)
        return ((frames - goal) ** 2).mean(dim=(1, 2, 3))

    def __call__(self, frame: Tensor, action: Tensor, next_frame: Tensor) -> Tensor:
        return -self.distance(next_frame)
