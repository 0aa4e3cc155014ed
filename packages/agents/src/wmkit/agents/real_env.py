"""The small interface a real environment needs, and a gymnasium adapter for it.

MBPO collects real transitions and Real2Sim evaluation runs policies in a real environment
through :class:`RealEnv`: ``reset(seed) -> frame uint8 [H, W, 3]``, ``step(action) -> (frame,
reward, done)``, ``action_spec`` and ``max_steps``, and optionally ``truncated``. ``done`` is a
termination; ``truncated`` says the last step hit the simulator's own time limit instead.
Every simulator of ``wmkit.core.data.envs`` (``RecordableEnv``: Crafter, Meta-World, ViZDoom)
has exactly this shape, so ``make_real_env("metaworld", 64, task="reach-v3")`` works
unchanged; so does :class:`~wmkit.agents.testing.SquareGoalEnv`.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from wmkit.agents.spaces import action_space_from_spec, image_observation_space
from wmkit.core import ActionSpec

__all__ = ["RealEnv", "RealGymEnv", "make_real_env"]


@runtime_checkable
class RealEnv(Protocol):
    """A real (simulated or physical) environment rendering ``uint8 [H, W, 3]`` frames."""

    action_spec: ActionSpec
    max_steps: int

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]: ...


def make_real_env(env: str | RealEnv, resolution: int = 64, **kwargs: Any) -> RealEnv:
    """An env by name: a ``RealEnv`` is returned as is; ``"module:Class"`` is imported and
    built as ``Class(resolution, **kwargs)``; any other name goes to core's
    ``make_env(name, resolution, **kwargs)`` (``crafter``, ``metaworld``, ``vizdoom``)."""
    if not isinstance(env, str):
        if not isinstance(env, RealEnv):
            raise TypeError(
                "env must be a name or a RealEnv (action_spec, max_steps, reset(seed), step); "
                f"got {type(env).__name__}"
            )
        return env
    if ":" in env:
        module, _, name = env.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"env {env!r}: cannot import {name} from {module}: {e}") from e
        return cls(resolution, **kwargs)
    from wmkit.core.data.envs import make_env

    return make_env(env, resolution, **kwargs)


class RealGymEnv(gym.Env):
    """A :class:`RealEnv` as a ``gymnasium.Env`` (for SB3 learners and gymnasium tools).

    The env's ``done`` is ``terminated``; ``truncated`` is the env's own time limit (its
    ``truncated`` flag) or ``max_steps``. Both can be true on the same step. ``reset`` without
    a seed draws one from the env's ``np_random``.

    Args:
        env: the real environment.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, env: RealEnv) -> None:
        super().__init__()
        self.env = make_real_env(env)
        frame = self.env.reset(0)
        self.observation_space = image_observation_space(*frame.shape[:2], frame.shape[2])
        self.action_space = action_space_from_spec(self.env.action_spec)
        self.render_mode = "rgb_array"
        self._frame, self._t = frame, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self._frame, self._t = self.env.reset(episode_seed), 0
        return self._frame, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._frame, reward, done = self.env.step(action)
        self._t += 1
        truncated = bool(getattr(self.env, "truncated", False)) or self._t >= self.env.max_steps
        return self._frame, float(reward), bool(done), truncated, {}

    def render(self) -> np.ndarray:
        return self._frame

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if callable(close):
            close()
