"""ViZDoom (Kempka et al., 2016): first-person Doom scenarios with multi-binary buttons."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.envs.base import ExplorationPolicy, RecordableEnv, StickyRandomPolicy

__all__ = ["SCENARIOS", "VizDoomEnv"]

SCENARIOS = ("basic", "defend_the_center", "health_gathering", "deadly_corridor", "my_way_home")
_TICRATE = 35.0  # Doom's fixed tics per second


def _import_vizdoom() -> Any:
    try:
        import vizdoom
    except ImportError as e:
        raise ImportError(
            "the vizdoom env needs the `vizdoom` package; install with "
            "`pip install 'wmkit-core[vizdoom]'`"
        ) from e
    return vizdoom


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class VizDoomEnv(RecordableEnv):
    """A ViZDoom scenario rendered at 160x120 and resized to a square ``resolution``.

    Actions are one 0/1 per button of the scenario (``ActionSpec.multi_discrete([2] * n)``
    named after the buttons); each is held for ``frame_skip`` tics. Episodes end on death or
    the scenario's goal (``done``), or by its timeout (``truncated``, not ``done``) or after
    ``max_steps`` actions. The 4:3 frame is squashed to 1:1.

    Args:
        resolution: frame height and width in pixels.
        scenario: one of ``SCENARIOS`` (ViZDoom's bundled ``<scenario>.cfg``).
        frame_skip: tics per action (Doom runs at 35 tics/s).
        max_steps: episode length cap in actions.
        resample: PIL filter for the resize, ``"bilinear"`` or ``"box"``.
    """

    def __init__(self, resolution: int = 64, scenario: str = "basic", frame_skip: int = 4,
                 max_steps: int | None = None, resample: str = "bilinear") -> None:  # fmt: skip
        if scenario not in SCENARIOS:
            raise ValueError(
                f"unknown ViZDoom scenario {scenario!r}; known: {', '.join(SCENARIOS)}"
            )
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1; got {frame_skip}")
        if resample not in ("bilinear", "box"):
            raise ValueError(f"resample must be 'bilinear' or 'box'; got {resample!r}")
        self.max_steps = int(max_steps) if max_steps is not None else 200
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1; got {self.max_steps}")
        vzd = _import_vizdoom()
        from PIL import Image

        self.resolution, self.scenario = int(resolution), scenario
        self.frame_skip, self.resample = int(frame_skip), resample
        self._filter = Image.Resampling.BILINEAR if resample == "bilinear" else Image.Resampling.BOX
        self._game = vzd.DoomGame()
        self._game.load_config(os.path.join(vzd.scenarios_path, f"{scenario}.cfg"))
        self._game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        self._game.set_screen_format(vzd.ScreenFormat.RGB24)
        self._game.set_window_visible(False)
        self._game.set_sound_enabled(False)
        self._game.set_mode(vzd.Mode.PLAYER)
        # ViZDoom writes _vizdoom.ini and a _vizdoom/ folder into its working directory.
        self._tmp = tempfile.TemporaryDirectory(prefix="wmkit-vizdoom-")
        self._game.set_doom_config_path(os.path.join(self._tmp.name, "_vizdoom.ini"))
        self._initialised = False
        names = tuple(b.name for b in self._game.get_available_buttons())
        self.action_spec = ActionSpec.multi_discrete([2] * len(names), names=names)
        self.fps = _TICRATE / self.frame_skip

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "frame_skip": self.frame_skip,
                "max_steps": self.max_steps, "resample": self.resample}  # fmt: skip

    def _frame(self) -> np.ndarray:
        from PIL import Image

        screen = self._game.get_state().screen_buffer  # [120, 160, 3] uint8
        size = (self.resolution, self.resolution)
        self._last_frame = np.asarray(Image.fromarray(screen).resize(size, self._filter))
        return self._last_frame

    def reset(self, seed: int) -> np.ndarray:
        if not self._initialised:
            with _working_directory(self._tmp.name):
                self._game.init()
            self._initialised = True
        # Seeding before new_episode() makes the episode depend on its seed alone (checked:
        # the same frames as a fresh game seeded the same, whatever episodes came before).
        self._game.set_seed(int(seed) % (2**31))
        self._game.new_episode()
        self.truncated = False
        return self._frame()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        if not self._initialised:
            raise RuntimeError("call reset(seed) before step")
        buttons = np.asarray(action).reshape(-1)
        if buttons.shape != (len(self.action_spec.nvec),) or not np.isin(buttons, (0, 1)).all():
            raise ValueError(
                f"vizdoom action must be {len(self.action_spec.nvec)} values in {{0, 1}} "
                f"({', '.join(self.action_spec.names)}); got {action!r}"
            )
        if self._game.is_episode_finished():
            raise RuntimeError("the ViZDoom episode has ended; call reset(seed)")
        reward = self._game.make_action([int(b) for b in buttons], self.frame_skip)
        if self._game.is_episode_finished():  # no state after the end: repeat the last frame
            # the scenario's timeout is a time limit; death and the goal are terminations
            timeout = self._game.is_episode_timeout_reached() and not self._game.is_player_dead()
            self.truncated = bool(timeout)
            return self._last_frame, float(reward), not timeout
        return self._frame(), float(reward), False

    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        return {
            "sticky_random": functools.partial(
                StickyRandomPolicy, self.action_spec, repeat_prob=0.75
            ),
            "random": functools.partial(StickyRandomPolicy, self.action_spec, repeat_prob=0.0),
        }

    def close(self) -> None:
        if self._initialised:
            self._game.close()
            self._initialised = False
        self._tmp.cleanup()
