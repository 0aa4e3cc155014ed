"""A planner as a :class:`~wmkit.agents.Policy`: model-predictive control in a world model.

Each call receives the current observation, keeps the last ``context_length`` frames (and the
actions taken between them) as the world model's context, re-plans every ``replan_every``
steps and executes the next action of the current plan.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wmkit.agents.planners import SamplingPlanner
from wmkit.agents.spaces import actions_to_numpy, obs_to_frames

__all__ = ["PlannerPolicy"]


class PlannerPolicy:
    """Receding-horizon control with a :class:`SamplingPlanner`.

    Args:
        planner: a ``CEMPlanner`` or ``MPPIPlanner``.
        context_length: frames of history given to the world model (``T0``).
        replan_every: steps executed from one plan before planning again
            (``<= planner.horizon``).
        device: where context frames are put for the world model.
    """

    def __init__(
        self,
        planner: SamplingPlanner,
        context_length: int = 1,
        replan_every: int = 1,
        device: str | None = None,
    ) -> None:
        if not 1 <= int(replan_every) <= planner.horizon:
            raise ValueError(
                f"replan_every must be in [1, horizon={planner.horizon}]; got {replan_every}"
            )
        if int(context_length) < 1:
            raise ValueError(f"context_length must be >= 1; got {context_length}")
        self.planner = planner
        self.context_length, self.replan_every = int(context_length), int(replan_every)
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.frames: list[Tensor] = []  # each [B, C, H, W]
        self.actions: list[Tensor] = []  # each [B, ...]
        self.plan: Tensor | None = None
        self.step_in_plan = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.frames = [*self.frames, obs_to_frames(obs, self.device)][-self.context_length :]
        if self.plan is None or self.step_in_plan >= self.replan_every:
            context = torch.stack(self.frames, dim=1)  # [B, T0, C, H, W]
            t0 = context.shape[1]
            ctx_actions = None
            if t0 > 1 and len(self.actions) >= t0 - 1:
                ctx_actions = torch.stack(self.actions[-(t0 - 1) :], dim=1)  # [B, T0 - 1, ...]
            self.plan = self.planner.plan(context, ctx_actions).actions
            self.step_in_plan = 0
        action = self.plan[:, self.step_in_plan]
        self.step_in_plan += 1
        self.actions = [*self.actions, action][-self.context_length :]
        return actions_to_numpy(self.planner.spec, action)
