"""What a planner maximises over imagined rollouts.

An :class:`Objective` scores ``N`` imagined rollouts: ``frames [N, H, C, H, W]`` generated
after the context, the model's ``rewards [N, H]`` (or ``None``), the ``actions`` that made
them, the context's last frame ``[N, C, H, W]`` and ``batch_index [N]`` (which planning
problem each rollout belongs to, for per-problem goals). Higher is better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from wmkit.agents.imagination import RewardFn
from wmkit.agents.rewards import GoalImageReward

__all__ = ["GoalImageObjective", "Objective", "RewardObjective"]


def _discounts(horizon: int, discount: float, device) -> Tensor:
    return discount ** torch.arange(horizon, dtype=torch.float32, device=device)  # [H]


class Objective(ABC):
    """Scores imagined rollouts; higher is better."""

    @abstractmethod
    def __call__(
        self,
        frames: Tensor,
        rewards: Tensor | None,
        actions: Tensor,
        context_last: Tensor,
        batch_index: Tensor,
    ) -> Tensor:
        """→ scores ``float [N]``."""


class RewardObjective(Objective):
    """Discounted sum of predicted rewards (iVideoGPT/MBPO-style reward planning).

    Args:
        discount: per-step discount ``γ`` (score ``Σ_t γ^t r_t``).
        reward_fn: ``(frame, action, next_frame) -> reward [B]`` used instead of the model's
            reward head (required when the model predicts none).
    """

    def __init__(self, discount: float = 1.0, reward_fn: RewardFn | None = None) -> None:
        if not 0 < discount <= 1:
            raise ValueError(f"discount must be in (0, 1]; got {discount}")
        self.discount, self.reward_fn = float(discount), reward_fn

    def __call__(self, frames, rewards, actions, context_last, batch_index) -> Tensor:
        if self.reward_fn is not None:
            prev = torch.cat([context_last[:, None], frames[:, :-1]], dim=1)  # [N, H, C, H, W]
            rewards = torch.stack(
                [
                    self.reward_fn(prev[:, t], actions[:, t], frames[:, t])
                    for t in range(frames.shape[1])
                ],
                dim=1,
            )  # [N, H]
        if rewards is None:
            raise ValueError(
                "the world model predicts no reward; give RewardObjective a reward_fn or plan "
                "with GoalImageObjective"
            )
        w = _discounts(rewards.shape[1], self.discount, rewards.device)
        return (rewards.float() * w).sum(dim=1)


class GoalImageObjective(Objective):
    """Negative distance of the imagined frames to a goal image (VP2-style visual planning).

    Args:
        goal: ``float [C, H, W]`` or one goal per planning problem ``[B, C, H, W]``.
        blur: box-blur kernel size before comparing (see ``GoalImageReward``).
        final_only: score only the last imagined frame (VP2); else the discounted sum over all
            frames, which also rewards getting there early.
        discount: per-step discount when ``final_only`` is false.
    """

    def __init__(
        self, goal: Tensor, blur: int = 1, final_only: bool = False, discount: float = 1.0
    ) -> None:
        self.reward = GoalImageReward(goal, blur)
        self.final_only, self.discount = final_only, float(discount)

    def __call__(self, frames, rewards, actions, context_last, batch_index) -> Tensor:
        n = frames.shape[0]
        steps = frames[:, -1:] if self.final_only else frames
        k = steps.shape[1]
        idx = batch_index.repeat_interleave(k) if self.reward.goal.shape[0] > 1 else None
        dist = self.reward.distance(steps.flatten(0, 1), idx).reshape(n, k)  # [N, K]
        return -(dist * _discounts(k, self.discount, dist.device)).sum(dim=1)
