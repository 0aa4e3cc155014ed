"""Crafter (Hafner, 2021): a 2D Minecraft-like open world with 17 discrete actions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.envs.base import ExplorationPolicy, RecordableEnv, StickyRandomPolicy

__all__ = ["CrafterEnv"]


def _import_crafter() -> Any:
    try:
        import crafter
    except ImportError as e:
        raise ImportError(
            "the crafter env needs the `crafter` package; install with "
            "`pip install 'wmkit-core[crafter]'`"
        ) from e
    return crafter


@functools.cache
def _deterministic_env_class() -> type:
    """``crafter.Env`` made deterministic under a seed (a subclass; crafter is not patched).

    Crafter 1.8.3 keeps each chunk's objects in a ``set`` hashed by ``id()``, and
    ``Env._balance_object`` picks the creature to despawn by indexing into a list built from
    that set, so the choice depends on memory addresses: the same seed and actions diverge
    after ~50 steps between runs. Sorting the objects by position (unique per cell) before
    the original method runs makes the order, and so the episode, a function of the seed.
    """
    crafter = _import_crafter()

    class DeterministicCrafterEnv(crafter.Env):
        def _balance_object(self, chunk: Any, objs: Any, *args: Any, **kwargs: Any) -> Any:
            ordered = sorted(objs, key=lambda o: (int(o.pos[0]), int(o.pos[1])))
            return super()._balance_object(chunk, ordered, *args, **kwargs)

    return DeterministicCrafterEnv


class CrafterEnv(RecordableEnv):
    """Crafter at any square resolution; episodes end on death or after ``max_steps``.

    Each episode builds a fresh world from its seed (``reset`` generates a whole
    world, its slowest step), so episode ``i`` does not depend on the episodes recorded before it.

    Args:
        resolution: frame height and width in pixels.
        max_steps: episode length cap (a random agent dies after ~100-300 steps).
        area: world size in cells (64 is Crafter's; smaller worlds generate faster, e.g. in
            tests: 32 takes ~0.15 s instead of ~0.8 s).
    """

    fps = 10.0

    def __init__(self, resolution: int = 64, max_steps: int | None = None, area: int = 64) -> None:
        if resolution < 18:  # 2 pixels per cell of Crafter's 9x9 view, or rendering fails
            raise ValueError(f"crafter needs resolution >= 18; got {resolution}")
        self._cls = _deterministic_env_class()
        self.resolution = int(resolution)
        self.max_steps = int(max_steps) if max_steps is not None else 1000
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1; got {self.max_steps}")
        if area < 16:
            raise ValueError(f"area must be >= 16 cells; got {area}")
        self.area = int(area)
        names = tuple(_import_crafter().constants.actions)
        self.action_spec = ActionSpec.discrete(len(names), names=names)
        self._env: Any = None

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"max_steps": self.max_steps, "area": self.area}

    def reset(self, seed: int) -> np.ndarray:
        # A new Env per episode: crafter seeds episode k of an Env with hash((seed, k)).
        self._env = self._cls(
            area=(self.area, self.area),
            size=(self.resolution, self.resolution),
            seed=int(seed),
            length=None,
        )
        self._last_frame = np.ascontiguousarray(self._env.reset())
        return self._last_frame

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        if self._env is None:
            raise RuntimeError("call reset(seed) before step")
        action = int(action)
        if not 0 <= action < self.action_spec.n:
            raise ValueError(f"crafter action must be in [0, {self.action_spec.n}); got {action}")
        obs, reward, done, _ = self._env.step(action)
        self._last_frame = np.ascontiguousarray(obs)
        return self._last_frame, float(reward), bool(done)

    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        # "explore": most draws walk (moves 0.6) or interact ("do" 0.2), so the view scrolls
        # and objects change and actions visibly matter; the other 12 actions share 0.15.
        names = self.action_spec.names or ()
        weights = {"move_left": 0.15, "move_right": 0.15, "move_up": 0.15, "move_down": 0.15,
                   "do": 0.2, "noop": 0.05}  # fmt: skip
        rest = 0.15 / max(1, len(names) - len(weights))
        explore = [weights.get(n, rest) for n in names]
        return {
            "sticky_random": functools.partial(
                StickyRandomPolicy, self.action_spec, repeat_prob=0.5
            ),
            "explore": functools.partial(
                StickyRandomPolicy,
                self.action_spec,
                repeat_prob=0.5,
                probs=explore,
                name="explore",
            ),
            "random": functools.partial(StickyRandomPolicy, self.action_spec, repeat_prob=0.0),
        }

    def close(self) -> None:
        self._env = None
