"""``WorldModelEnv``: a ``gymnasium.Env`` around any ``WorldModel`` (one environment).

Observations are the generated frames as ``uint8 [H, W, C]`` (the layout SB3's
``CnnPolicy`` and gymnasium's image wrappers expect); the action space comes from the
model's ``ActionSpec``; rewards and terminations come from the model's heads or from
user-given functions of the frames; episodes start from real context clips and truncate at
``max_episode_steps``. For many environments stepped as one batch use
:class:`~wmkit.agents.WorldModelVecEnv` (SB3 ``VecEnv``) instead: same engine, ``N`` times
fewer model calls.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from torch import Tensor

from wmkit.agents.contexts import ClipContexts, ContextSource
from wmkit.agents.imagination import Imagination, RewardFn, TerminationFn
from wmkit.agents.spaces import action_space_from_spec, image_observation_space
from wmkit.core import WorldModel

__all__ = ["WorldModelEnv"]


class WorldModelEnv(gym.Env):
    """A world model as a gymnasium environment.

    Args:
        world_model: any ``wmkit.core.WorldModel``.
        contexts: start clips: a ``ContextSource`` or a video tensor ``[N, T0, C, H, W]``.
        reward_fn: ``(frame, action, next_frame) -> reward [B]``; default: the model's
            reward head.
        termination_fn: ``(frame, action, next_frame) -> bool [B]``; default: the model's done
            head, else never (episodes only truncate).
        max_episode_steps: imagined steps before truncation.
        render_mode: ``None`` or ``"rgb_array"`` (returns the current frame).
        device: where the model runs.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        world_model: WorldModel,
        contexts: ContextSource | Tensor,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        max_episode_steps: int = 64,
        render_mode: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        if isinstance(contexts, Tensor):
            contexts = ClipContexts(contexts)
        self.core = Imagination(
            world_model, contexts, 1, reward_fn, termination_fn, max_episode_steps, device
        )
        c, h, w = contexts.frame_shape
        self.observation_space = image_observation_space(h, w, c)
        self.action_space = action_space_from_spec(world_model.action_spec)
        self.render_mode = render_mode
        self._obs: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._obs = self.core.reset(self.np_random)[0]
        return self._obs, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated = self.core.step(np.asarray(action), self.np_random)
        self._obs = obs[0]
        return self._obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        return None if self.render_mode is None else self._obs
