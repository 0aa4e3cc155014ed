"""Atari 2600 games (the Arcade Learning Environment, Bellemare et al., 2013) with DIAMOND's
observation preprocessing (Alonso et al., 2024; Machado et al., 2018).

Each action is repeated for ``frame_skip`` emulator frames (4), rewards are summed over
them, and the observation is the pixel-wise max of the last two RGB screens (Atari sprites
flicker from frame to frame), resized to a square with area averaging. An episode starts
with 1..``noop_max`` no-op actions drawn from the episode's seed, so episodes of one policy
do not all start from the same frame. Actions are the game's minimal action set (9 for
MsPacman), the ``num_actions`` of DIAMOND's released models for that game.

The ROMs come with ``ale-py``'s wheels; the emulator is driven through ``ALEInterface``
directly (no Gymnasium wrapper), with sticky actions off (``repeat_action_probability=0``,
as Gymnasium's ``<Game>NoFrameskip-v4`` that DIAMOND trains on).

Where we differ from DIAMOND's wrapper:

- the resize is :func:`area_resize` (numpy), not ``cv2.resize(..., INTER_AREA)``, so OpenCV
  is not a dependency. Both average each output pixel over the input area it covers, with
  fractional weights at the borders, and round to the nearest integer; on Atari screens at
  DIAMOND's 64x64 they agree exactly (``test_atari_env.py`` checks this against cv2 when it is
  installed; see :func:`area_resize` for other sizes);
- on the step where the game ends during the skipped frames, DIAMOND returns the previous
  step's pooled frame (its buffers are not refreshed after the break); we return the screen
  at the end (max-pooled with the one before it when there is one).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.envs.base import ExplorationPolicy, RecordableEnv, StickyRandomPolicy

__all__ = ["AtariEnv", "area_resize", "rom_available", "rom_id"]

_ATARI_HZ = 60.0


def _import_ale() -> Any:
    try:
        import ale_py
    except ImportError as e:
        raise ImportError(
            "the atari env needs the `ale-py` package; install with "
            "`pip install 'wmkit-core[atari]'`"
        ) from e
    return ale_py


def rom_id(game: str) -> str:
    """ALE's ROM id of a game named as Gymnasium does (``MsPacman``, ``MsPacmanNoFrameskip-v4``,
    ``ALE/MsPacman-v5``) or as ALE does (``ms_pacman``)."""
    name = game.split("/")[-1]
    name = re.sub(r"(NoFrameskip)?(-v\d+)?$", "", name)
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower()


def rom_available(game: str) -> bool:
    """Whether ale-py is installed with the ROM of ``game`` (named as :func:`rom_id` reads
    it), so that an ``AtariEnv`` of it can start."""
    try:
        from ale_py import roms

        with warnings.catch_warnings():  # ale-py warns of games it does not know
            warnings.simplefilter("ignore")
            path = roms.get_rom_path(rom_id(game))
        return path is not None and Path(path).is_file()
    except (ImportError, AttributeError, KeyError, TypeError, OSError):
        return False


@functools.cache
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Integer ``[n_out, n_in]``: ``n_out`` times the overlap of output cell ``i`` (input
    interval ``[i, i + 1) * n_in / n_out``) with input pixel ``j``; each row sums to ``n_in``."""
    edges = np.arange(n_out + 1) * n_in  # cell boundaries, in units of 1 / n_out pixel
    starts = np.arange(n_in) * n_out
    lo = np.maximum(edges[:-1, None], starts[None, :])
    hi = np.minimum(edges[1:, None], starts[None, :] + n_out)
    return np.clip(hi - lo, 0, None).astype(np.int64)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Shrink ``uint8 [H, W, C]`` to ``[size, size, C]`` by area averaging (OpenCV's
    ``INTER_AREA`` for downscaling): each output pixel is the mean of the input area it
    covers, border pixels weighted by the fraction inside, rounded half to even.

    The sums are exact integers (the weights scaled by ``size``), so ties round exactly
    (``H * W * 255`` must stay below 2**53, true for any real screen).
    OpenCV sums in float32, so where the mean is an exact tie its rounding error can break it
    the other way: on Atari screens the two agree exactly at 64 (DIAMOND's size), 32 and 17,
    and differ by 1 on a small fraction of pixels at other sizes such as 84.

    Raises:
        ValueError: ``image`` is not ``uint8 [H, W, C]`` or ``size`` exceeds ``H`` or ``W``.
    """
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(
            f"image must be uint8 [H, W, C]; got shape {image.shape} dtype {image.dtype}"
        )
    h, w = image.shape[:2]
    if not 1 <= size <= min(h, w):
        raise ValueError(f"area_resize shrinks only: size must be in [1, {min(h, w)}]; got {size}")
    # Integer sums of at most 255 * H * W, computed exactly in float64 (BLAS).
    x = np.moveaxis(image, -1, 0).astype(np.float64)  # [C, H, W]
    total = _area_weights(h, size).astype(np.float64) @ x @ _area_weights(w, size).T  # [C, s, s]
    q, r = np.divmod(np.moveaxis(total, 0, -1).astype(np.int64), h * w)  # q + r / (H W)
    q += (2 * r > h * w) | ((2 * r == h * w) & (q % 2 == 1))
    return q.astype(np.uint8)


class AtariEnv(RecordableEnv):
    """An Atari game with DIAMOND's preprocessing (see the module docstring).

    ``done`` is the game's end (``game_over``), or, with ``done_on_life_loss``, the loss of a
    life (DIAMOND's training environments). The emulator has no time limit of its own; the
    recorder's ``max_steps`` cuts episodes short.

    Args:
        resolution: frame height and width in pixels (DIAMOND: 64).
        game: the game, e.g. ``MsPacman``, ``Breakout``, ``Pong`` (see :func:`rom_id`).
        frame_skip: emulator frames per action.
        noop_max: at most this many no-ops start an episode (at least one; 0: none).
        max_steps: episode length cap in actions.
        done_on_life_loss: end the episode when a life is lost.
        repeat_action_probability: ALE's sticky actions (0 as in ``-v4``; ``-v5`` uses 0.25).
    """

    def __init__(
        self,
        resolution: int = 64,
        game: str = "MsPacman",
        frame_skip: int = 4,
        noop_max: int = 30,
        max_steps: int | None = None,
        done_on_life_loss: bool = False,
        repeat_action_probability: float = 0.0,
    ) -> None:
        ale_py = _import_ale()
        from ale_py import roms

        self.rom = rom_id(game)
        known = roms.get_all_rom_ids()
        if self.rom not in known:
            raise ValueError(
                f"unknown Atari game {game!r} (ROM id {self.rom!r}); known ROM ids: "
                + ", ".join(known)
            )
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1; got {frame_skip}")
        if noop_max < 0:
            raise ValueError(f"noop_max must be >= 0; got {noop_max}")
        if not 0.0 <= repeat_action_probability < 1.0:
            raise ValueError(
                f"repeat_action_probability must be in [0, 1); got {repeat_action_probability}"
            )
        if not 1 <= resolution <= 160:
            raise ValueError(
                f"atari resolution must be in [1, 160] (screens are 210x160); got {resolution}"
            )
        self.max_steps = int(max_steps) if max_steps is not None else 1000
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1; got {self.max_steps}")
        self.resolution, self.game = int(resolution), game
        self.frame_skip, self.noop_max = int(frame_skip), int(noop_max)
        self.done_on_life_loss = bool(done_on_life_loss)
        self.repeat_action_probability = float(repeat_action_probability)
        self.fps = _ATARI_HZ / self.frame_skip
        self._rom_path = roms.get_rom_path(self.rom)
        self._ale = ale_py.ALEInterface()
        self._ale.setLoggerMode(ale_py.LoggerMode.Error)
        self._ale.setFloat("repeat_action_probability", self.repeat_action_probability)
        self._ale.setInt("random_seed", 0)
        self._ale.loadROM(self._rom_path)
        self._actions = list(self._ale.getMinimalActionSet())
        names = tuple(a.name for a in self._actions)
        self.action_spec = ActionSpec.discrete(len(names), names=names)
        self._lives = 0
        self._started = False

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"game": self.game, "frame_skip": self.frame_skip, "noop_max": self.noop_max,
                "max_steps": self.max_steps, "done_on_life_loss": self.done_on_life_loss,
                "repeat_action_probability": self.repeat_action_probability}  # fmt: skip

    @property
    def raw_screen(self) -> np.ndarray:
        """The emulator's current screen ``uint8 [210, 160, 3]`` (before pooling and resize)."""
        return self._ale.getScreenRGB()

    def _observe(self, screens: list[np.ndarray]) -> np.ndarray:
        pooled = screens[-1] if len(screens) == 1 else np.maximum(screens[-2], screens[-1])
        self._last_frame = area_resize(pooled, self.resolution)
        return self._last_frame

    def reset(self, seed: int) -> np.ndarray:
        # Seeding and reloading the ROM makes the episode depend on its seed alone.
        self._ale.setInt("random_seed", int(seed) % (2**31))
        self._ale.loadROM(self._rom_path)
        self._ale.reset_game()
        rng = np.random.default_rng(int(seed))
        noops = int(rng.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            self._ale.act(self._actions[0])
            if self._ale.game_over():
                self._ale.reset_game()
        self._lives = self._ale.lives()
        self._started = True
        self.truncated = False
        return self._observe([self._ale.getScreenRGB()])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool]:
        if not self._started:
            raise RuntimeError("call reset(seed) before step")
        index = int(np.asarray(action).reshape(()))
        n = self.action_spec.n
        if not 0 <= index < n:
            raise ValueError(f"atari action must be in [0, {n}) for {self.game}; got {action!r}")
        if self._ale.game_over():
            raise RuntimeError("the Atari game is over; call reset(seed)")
        reward, screens, life_lost = 0.0, [], False
        for t in range(self.frame_skip):
            reward += float(self._ale.act(self._actions[index]))
            lives = self._ale.lives()
            life_lost |= lives < self._lives
            self._lives = lives
            over = self._ale.game_over()
            if over or t >= self.frame_skip - 2:
                screens.append(self._ale.getScreenRGB())
            if over:
                break
        done = self._ale.game_over() or (self.done_on_life_loss and life_lost)
        return self._observe(screens), reward, bool(done)

    def policies(self) -> dict[str, Callable[..., ExplorationPolicy]]:
        return {
            "sticky_random": functools.partial(
                StickyRandomPolicy, self.action_spec, repeat_prob=0.5
            ),
            "random": functools.partial(StickyRandomPolicy, self.action_spec, repeat_prob=0.0),
        }

    def close(self) -> None:
        self._started = False
