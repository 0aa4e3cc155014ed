"""Meta-World (Yu et al., 2019) on MuJoCo: a Sawyer arm with 4-D continuous control.

Rendering is set up for fast data generation on CPU: shadows, reflections and MSAA are
switched off before the first render (about 10x faster with software GL; the look loses
its shadows), and ``MUJOCO_GL`` defaults to ``osmesa`` when it is unset and there is no
display. The ``corner*`` cameras render upside down, so their frames are rotated 180°.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.envs.base import (
    ExplorationPolicy,
    RecordableEnv,
    StickyRandomPolicy,
    random_action,
)

__all__ = ["CAMERAS", "MetaWorldEnv", "NoisyExpertPolicy"]

CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
_MAX_PATH_LENGTH = 500  # Meta-World's own limit: step() raises after it


def _import_metaworld() -> Any:
    # MuJoCo picks its GL backend from MUJOCO_GL when it is first imported.
    if "MUJOCO_GL" not in os.environ and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ["MUJOCO_GL"] = "osmesa"
    try:
        import metaworld
        import metaworld.policies
    except ImportError as e:
        raise ImportError(
            "the metaworld env needs the `metaworld` package (with mujoco and gymnasium); "
            "install with `pip install 'wmkit-core[metaworld]'`"
        ) from e
    return metaworld


@functools.cache
def _benchmark(task: str, goal_seed: int) -> Any:
    """``metaworld.MT1``: the task's 50 goal variants (building it costs ~0.5 s)."""
    metaworld = _import_metaworld()
    if task not in metaworld.MT1.ENV_NAMES:
        known = ", ".join(sorted(metaworld.MT1.ENV_NAMES))
        raise ValueError(f"unknown Meta-World task {task!r}; known tasks: {known}")
    return metaworld.MT1(task, seed=goal_seed)


class NoisyExpertPolicy(ExplorationPolicy):
    """Meta-World's scripted expert for the task, plus Gaussian noise ``N(0, noise_std²)``
    and, with probability ``random_prob``, a uniformly random action instead.

    The expert makes the arm reach, grasp and move objects; the noise and random actions
    make the data cover off-expert states, so actions visibly matter (DESIGN.md §4).

    Args:
        task: Meta-World task name (``metaworld.policies.ENV_POLICY_MAP`` key).
        spec: the env's (continuous) action spec.
        noise_std: standard deviation of the Gaussian added to every expert action.
        random_prob: per-step probability of a uniformly random action.
    """

    def __init__(self, task: str, spec: ActionSpec, noise_std: float = 0.3,
                 random_prob: float = 0.1) -> None:  # fmt: skip
        if noise_std < 0 or not 0 <= random_prob <= 1:
            raise ValueError(
                f"noise_std must be >= 0 and random_prob in [0, 1]; got {noise_std}, {random_prob}"
            )
        policy_map = _import_metaworld().policies.ENV_POLICY_MAP
        if task not in policy_map:
            raise ValueError(f"Meta-World has no scripted policy for task {task!r}")
        self.task = task
        self.spec = spec
        self.noise_std = float(noise_std)
        self.random_prob = float(random_prob)
        self._expert = policy_map[task]()
        self._low, self._high = np.asarray(spec.low), np.asarray(spec.high)

    def act(self, obs: Any, rng: np.random.Generator) -> np.ndarray:
        # Both draws happen every step so the rng stream does not depend on the branch.
        explore = rng.random() < self.random_prob
        noise = rng.normal(0.0, self.noise_std, self.spec.shape) if self.noise_std else 0.0
        if explore:
            return np.asarray(random_action(self.spec, rng), np.float32)
        with warnings.catch_warnings():  # "Constant(s) may be too high" on the first call
            warnings.simplefilter("ignore")
            action = np.asarray(self._expert.get_action(obs), np.float64)
        return np.clip(action + noise, self._low, self._high).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        name = "noisy_expert" if self.noise_std or self.random_prob else "expert"
        return {"name": name, "expert": type(self._expert).__name__,
                "noise_std": self.noise_std, "random_prob": self.random_prob}  # fmt: skip


class MetaWorldEnv(RecordableEnv):
    """One Meta-World task (MT1) rendered from a fixed camera.

    Each episode picks one of the task's 50 goal variants (fixed by ``goal_seed``) with the
    episode seed; Meta-World ignores ``reset(seed=)``, so the seed goes through
    ``env.seed`` and the goal choice instead.

    Args:
        resolution: frame height and width in pixels.
        task: Meta-World v3 task, e.g. ``reach-v3``, ``pick-place-v3``, ``push-v3``,
            ``drawer-open-v3``, ``button-press-topdown-v3``.
        camera: one of ``CAMERAS``; ``corner*`` frames are rotated 180° to be upright.
        max_steps: episode length cap (at most Meta-World's 500).
        goal_seed: seed of the task's 50 goal variants (``metaworld.MT1(task, seed)``).
    """

    def __init__(self, resolution: int = 64, task: str = "reach-v3", camera: str = "corner",
                 max_steps: int | None = None, goal_seed: int = 0) -> None:  # fmt: skip
        if camera not in CAMERAS:
            raise ValueError(f"unknown Meta-World camera {camera!r}; known: {', '.join(CAMERAS)}")
        self.max_steps = int(max_steps) if max_steps is not None else 150
        if not 1 <= self.max_steps <= _MAX_PATH_LENGTH:
            raise ValueError(f"max_steps must be in [1, {_MAX_PATH_LENGTH}]; got {max_steps}")
        self.resolution, self.task, self.camera = int(resolution), task, camera
        self.goal_seed = int(goal_seed)
        benchmark = _benchmark(task, self.goal_seed)
        self._tasks = [t for t in benchmark.train_tasks if t.env_name == task]
        self._env = benchmark.train_classes[task](
            render_mode="rgb_array", camera_name=camera, width=self.resolution,
            height=self.resolution,
        )  # fmt: skip
        model = self._env.model  # fast software rendering; must precede the first render
        model.light_castshadow[:] = 0
        model.mat_reflectance[:] = 0
        model.vis.quality.offsamples = 0
        self._flip = camera.startswith("corner")
        space = self._env.action_space
        self.action_spec = ActionSpec.continuous(
            space.shape, low=space.low.tolist(), high=space.high.tolist(),
            names=("dx", "dy", "dz", "gripper"),
        )  # fmt: skip
        self.fps = float(round(1.0 / self._env.dt, 6))
        self._obs: np.ndarray | None = None

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"task": self.task, "camera": self.camera, "max_steps": self.max_steps,
                "goal_seed": self.goal_seed}  # fmt: skip

    @property
    def observation(self) -> np.ndarray | None:
        return self._obs

    def _render(self) -> np.ndarray:
        frame = self._env.render()
        if self._flip:
            frame = frame[::-1, ::-1]
        self._last_frame = np.ascontiguousarray(frame)
        return self._last_frame

    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self._env.seed(int(seed))
        self._env.set_task(self._tasks[int(rng.integers(len(self._tasks)))])
        self._obs, _ = self._env.reset()
        self.truncated = False
        return self._render()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        if self._obs is None:
            raise RuntimeError("call reset(seed) before step")
        action = np.asarray(action, np.float32).reshape(self.action_spec.shape)
        if self.truncated:
            raise RuntimeError("the episode hit Meta-World's step limit; call reset(seed)")
        self._obs, reward, terminated, truncated, _ = self._env.step(action)
        self.truncated = bool(truncated and not terminated)
        return self._render(), float(reward), bool(terminated)

    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        return {
            "noisy_expert": functools.partial(NoisyExpertPolicy, self.task, self.action_spec),
            "expert": functools.partial(
                NoisyExpertPolicy, self.task, self.action_spec, noise_std=0.0, random_prob=0.0
            ),
            "random": functools.partial(StickyRandomPolicy, self.action_spec, repeat_prob=0.0),
        }

    def close(self) -> None:
        if self._env is not None:
            self._env.close()  # frees the GL context (else EGL errors at exit)
            self._env = None
