"""Policies as wmkit's planners, evaluators and MBPO see them.

A :class:`Policy` maps a batch of observations ``uint8 [B, H, W, C]`` to a batch of actions
(numpy, ``[B, *action_shape]``), so the same object acts in a real environment (``B = 1``)
and in ``B`` imagined environments at once. ``reset()`` marks the start of new episodes
(planners keep a frame history).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from wmkit.core import ActionSpec

__all__ = ["OpenLoopPolicy", "Policy", "RandomPolicy", "SB3Policy"]


@runtime_checkable
class Policy(Protocol):
    """``policy(obs uint8 [B, H, W, C]) -> actions [B, *action_shape]``; ``reset()`` between
    episodes."""

    def reset(self) -> None: ...

    def __call__(self, obs: np.ndarray) -> np.ndarray: ...


class RandomPolicy:
    """Uniformly random actions of ``action_spec`` from its own seeded generator.

    Args:
        action_spec: the actions to draw.
        seed: generator seed.
    """

    def __init__(self, action_spec: ActionSpec, seed: int = 0) -> None:
        self.action_spec = action_spec
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        spec, b = self.action_spec, obs.shape[0]
        if spec.kind == "discrete":
            return self.rng.integers(0, spec.n, size=b)
        if spec.kind == "multi_discrete":
            return self.rng.integers(0, np.asarray(spec.nvec), size=(b, len(spec.nvec)))
        low = np.asarray(spec.low, np.float32).reshape(spec.action_shape)
        high = np.asarray(spec.high, np.float32).reshape(spec.action_shape)
        return self.rng.uniform(low, high, size=(b, *spec.action_shape)).astype(np.float32)


class SB3Policy:
    """A stable-baselines3 model (``SAC``, ``PPO``, ...) as a :class:`Policy`.

    Args:
        model: anything with SB3's ``predict(obs, deterministic=...)``.
        deterministic: act with the mode of the action distribution.
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must have SB3's predict(); got {type(model).__name__}")
        self.model = model
        self.deterministic = deterministic

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(action)


class OpenLoopPolicy:
    """Replays a fixed action sequence, one action per call, the same for every env of a batch.

    Scripted experts that read the simulator's state (Meta-World's ``metaworld.policies``)
    cannot act in a world model, which only shows frames; from a fixed start their actions
    are a fixed sequence, so replaying it open loop gives the same episode in the real env and
    a policy the world model can run too (Real2Sim). After the last action it repeats the last
    one; ``reset()`` rewinds to the first.

    Args:
        actions: ``[T, *action_shape]`` actions, ``T >= 1``.
    """

    def __init__(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        if actions.ndim < 1 or len(actions) < 1:
            raise ValueError(
                f"actions must be a non-empty sequence [T, *action_shape]; got shape "
                f"{actions.shape}"
            )
        self.actions = actions
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action = self.actions[min(self.t, len(self.actions) - 1)]
        self.t += 1
        return np.repeat(action[None], obs.shape[0], axis=0)
