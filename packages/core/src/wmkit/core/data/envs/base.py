"""What ``wmkit record`` needs from a simulator, and from the policy that drives it.

A :class:`RecordableEnv` wraps one simulator behind a seed-only ``reset`` and a
``step`` that returns the rendered frame, so the recorder never sees simulator APIs
(Crafter's old gym tuple, Gymnasium's 5-tuple, ViZDoom's game object). An
:class:`ExplorationPolicy` picks actions from the simulator's native observation with an
explicit ``numpy`` generator, so an episode is a pure function of its seed (DESIGN.md §4).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec

__all__ = ["ExplorationPolicy", "RecordableEnv", "StickyRandomPolicy", "random_action"]


class ExplorationPolicy(ABC):
    """Chooses actions while recording; all randomness comes from the ``rng`` passed in."""

    def reset(self, rng: np.random.Generator) -> None:  # noqa: B027 - optional hook
        """Start a new episode (clear any memory of the previous one)."""

    @abstractmethod
    def act(self, obs: Any, rng: np.random.Generator) -> np.ndarray | int:
        """Action for the current step given the env's native observation ``obs``."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON description (name and parameters), stored in the dataset manifest."""


class RecordableEnv(ABC):
    """A simulator that renders square ``uint8 [H, W, 3]`` frames at a chosen resolution.

    Attributes:
        action_spec: the actions ``step`` accepts.
        fps: frames per second of the recorded frames (simulated time, not wall clock).
        max_steps: episode length cap; the recorder stops an episode after this many steps.
        truncated: the last ``step`` ended the episode by the simulator's own time limit (a
            ViZDoom scenario's timeout, Meta-World's 500 steps), not by a termination.
            ``reset`` clears it.

    ``done`` and ``truncated`` follow Gymnasium: ``done`` is a termination (death, success, a
    scenario's goal), something a world model can learn to predict from what it sees and an
    agent must not bootstrap past; a time limit only cuts the episode short. A time limit
    recorded as ``done`` would teach a done head to predict an end that nothing in the frames
    announces, and an agent trained on the data to treat a cut-off state as terminal (Pardo
    et al., 2018, "Time Limits in Reinforcement Learning").
    """

    action_spec: ActionSpec
    fps: float
    max_steps: int
    truncated: bool = False
    _last_frame: np.ndarray | None = None

    @property
    @abstractmethod
    def env_kwargs(self) -> dict[str, Any]:
        """The resolved settings (task, camera, max_steps, ...) as JSON, for the manifest;
        ``make_env(name, resolution, **env_kwargs)`` rebuilds the same env."""

    @property
    def observation(self) -> Any:
        """The simulator's native observation after the last ``reset``/``step`` (e.g.
        Meta-World's 39-d state), for scripted policies. Defaults to the last frame."""
        return self._last_frame

    @abstractmethod
    def reset(self, seed: int) -> np.ndarray:
        """Start an episode that depends only on ``seed``; returns frame 0 ``uint8 [H, W, 3]``."""

    @abstractmethod
    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        """Apply ``action``; returns ``(next frame, reward, done)``. ``done``: the episode
        terminated (death, success, the scenario's goal). An end by the simulator's own time
        limit returns ``done = False`` and sets :attr:`truncated` instead."""

    @abstractmethod
    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        """Exploration policy factories by name (keyword arguments override their
        parameters); the first is the default."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the simulator (renderer contexts, processes)."""

    def __enter__(self) -> RecordableEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def random_action(spec: ActionSpec, rng: np.random.Generator) -> np.ndarray | int:
    """One uniformly random action of ``spec`` (int, int64 ``[n]`` or float32 ``shape``)."""
    if spec.kind == "discrete":
        return int(rng.integers(spec.n))
    if spec.kind == "multi_discrete":
        return rng.integers(0, np.asarray(spec.nvec)).astype(np.int64)
    low, high = np.asarray(spec.low), np.asarray(spec.high)
    return rng.uniform(low, high).astype(np.float32).reshape(spec.shape)


class StickyRandomPolicy(ExplorationPolicy):
    """Sticky random actions: repeat the previous action with probability ``repeat_prob``,
    else draw a new one uniformly (continuous: uniform in the box).

    Repeating gives runs of the same action (walk several tiles, keep turning), so frames
    change coherently with the actions instead of jittering as i.i.d. noise does.

    Args:
        spec: the env's action spec.
        repeat_prob: probability of repeating the previous action, in ``[0, 1)``.
        probs: discrete specs only: probability of each action when a new one is drawn
            (normalised; default uniform), e.g. to favour the actions that change the frame.
        name: the policy's name in the manifest.
    """

    def __init__(
        self,
        spec: ActionSpec,
        repeat_prob: float = 0.5,
        probs: list[float] | None = None,
        name: str | None = None,
    ) -> None:
        if not 0.0 <= repeat_prob < 1.0:
            raise ValueError(f"repeat_prob must be in [0, 1); got {repeat_prob}")
        if probs is not None:
            if spec.kind != "discrete" or len(probs) != spec.n or min(probs) < 0 or sum(probs) <= 0:
                raise ValueError(
                    f"probs must be {spec.n} non-negative weights for {spec.describe()}"
                )
            probs = [p / sum(probs) for p in probs]
        self.spec = spec
        self.repeat_prob = float(repeat_prob)
        self.probs = probs
        self.name = name or ("sticky_random" if self.repeat_prob > 0 else "random")
        self._prev: np.ndarray | int | None = None

    def reset(self, rng: np.random.Generator) -> None:
        self._prev = None

    def act(self, obs: Any, rng: np.random.Generator) -> np.ndarray | int:
        repeat = rng.random() < self.repeat_prob  # drawn every step: a fixed rng stream
        if self._prev is None or not repeat:
            if self.probs is not None:
                self._prev = int(rng.choice(len(self.probs), p=self.probs))
            else:
                self._prev = random_action(self.spec, rng)
        return self._prev.copy() if isinstance(self._prev, np.ndarray) else self._prev

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "repeat_prob": self.repeat_prob}
        if self.probs is not None:
            out["probs"] = [round(p, 6) for p in self.probs]
        return out
