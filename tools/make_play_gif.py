"""Make the README's play GIF: a world model beside the real game, driven by the same keys.

    uv run python tools/make_play_gif.py --world runs/quickstart/world --env crafter \\
        --resolution 32 --out packages/wmkit/docs/play.gif

Each GIF frame is a side-by-side: the real simulator on the left, the world model on the
right, a title row naming which is which and a caption row with the step, the key pressed
and the action it gave. Both columns take the same key presses (``--keys``), turned into
actions by ``wmkit play``'s own bindings (``default_bindings`` or ``--bindings FILE``):

- left: one real episode recorded with ``wmkit.core.data.record.record_episode`` (the
  recorder of ``wmkit record``) under a policy that replays those actions, from env seed
  ``--seed``, which is the episode ``wmkit play --env ... --seed`` starts on;
- right: a :class:`~wmkit.apps.play.session.PlaySession` on the world model alone, reset
  on the first ``--context`` real frames and then stepped with the remaining actions, which
  is what ``wmkit play`` does when one switches from the environment to the model.

Frames are upscaled by ``--scale`` with nearest-neighbour so 32² or 64² pixels stay sharp.
The GIF is written with Pillow (a dependency of the ``wmkit`` package), one adaptive
palette per frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from wmkit.apps.play.bindings import Bindings, InputState, default_bindings
from wmkit.apps.play.session import PlaySession
from wmkit.core import ActionSpec, WorldModel, load_pretrained, to_float_video
from wmkit.core.data.envs import ExplorationPolicy, RecordableEnv, make_env
from wmkit.core.data.record import record_episode

__all__ = [
    "DEFAULT_KEYS",
    "ScriptedPolicy",
    "actions_for_keys",
    "imagine",
    "main",
    "parse_keys",
    "record_real",
    "save_gif",
    "side_by_side",
    "to_native",
]

#: Crafter under ``wmkit play``'s default bindings: walk right (d) towards the trees of seed
#: 0's start, interact (Space), walk down, left (a) and back up, interact, then wait: the view
#: scrolls in every direction within 20 steps.
DEFAULT_KEYS = "d*4,Space*2,ArrowDown*3,a*5,ArrowUp*3,Space,none*2"
_KEY_ALIASES = {"space": " ", "none": None}
_BACKGROUND = (24, 24, 28)
_TEXT = (235, 235, 235)


def parse_keys(text: str) -> list[str | None]:
    """``"d*3,Space,none*2"`` → one browser key name (``KeyboardEvent.key``) per step.

    ``Space`` stands for ``" "``; ``none`` is a step with no key held (the bindings' default
    action, e.g. Crafter's ``noop``). ``KEY*N`` repeats a key ``N`` times.
    """
    keys: list[str | None] = []
    for item in text.split(","):
        name, sep, count = item.strip().partition("*")
        if not name:
            raise ValueError(f"--keys has an empty entry in {text!r} (use 'none' for no key)")
        try:
            repeat = int(count) if sep else 1
        except ValueError:
            raise ValueError(f"--keys entry {item!r} must be KEY or KEY*N with N an int") from None
        if repeat < 1:
            raise ValueError(f"--keys entry {item!r} repeats {repeat} times; must be >= 1")
        key = _KEY_ALIASES.get(name.lower(), name)
        keys.extend([key] * repeat)
    return keys


def actions_for_keys(bindings: Bindings, keys: Sequence[str | None]) -> list[torch.Tensor]:
    """The action each key gives under ``bindings`` (``[*action_shape]`` each), as in
    ``wmkit play``; a key the bindings do not know is an error, not a silent no-op."""
    bound = {k for c in bindings.components for k in c.keys}
    unknown = sorted({k for k in keys if k is not None and k not in bound})
    if unknown:
        shown = ", ".join(repr(k) for k in unknown)
        raise ValueError(
            f"keys {shown} are not bound; the bindings are: {'; '.join(bindings.describe())}"
        )
    return [bindings.action(InputState(keys=[] if k is None else [k])) for k in keys]


def to_native(action: torch.Tensor, spec: ActionSpec) -> int | np.ndarray:
    """An action tensor as a simulator takes it (``PlaySession.step``'s conversion)."""
    native = action.numpy()
    return int(native) if spec.kind == "discrete" else native


class ScriptedPolicy(ExplorationPolicy):
    """Replays a fixed list of native actions, one per step, so the recorder drives the
    simulator with exactly the key presses given.

    Args:
        actions: the native actions, in order (``int`` for discrete specs, arrays else).
    """

    def __init__(self, actions: Sequence[int | np.ndarray]) -> None:
        if not actions:
            raise ValueError("ScriptedPolicy needs at least one action")
        self.actions = list(actions)
        self._t = 0

    def reset(self, rng: np.random.Generator) -> None:
        self._t = 0

    def act(self, obs: Any, rng: np.random.Generator) -> int | np.ndarray:
        if self._t >= len(self.actions):
            raise RuntimeError(f"ScriptedPolicy ran out of its {len(self.actions)} actions")
        action = self.actions[self._t]
        self._t += 1
        return action

    def describe(self) -> dict[str, Any]:
        return {"name": "scripted", "steps": len(self.actions)}


def record_real(
    env: RecordableEnv, actions: Sequence[torch.Tensor], seed: int
) -> tuple[np.ndarray, int]:
    """Record one episode of ``env`` from ``seed`` under ``actions``.

    Returns the observations ``uint8 [n + 1, H, W, 3]`` (before the first action, then
    after each) and ``n``, the actions taken: fewer than given if the episode ended first.
    """
    native = [to_native(a, env.action_spec) for a in actions]
    episode = record_episode(env, ScriptedPolicy(native), seed, max_steps=len(native))
    frames = np.concatenate([episode["frames"], episode["final_frame"][None]])
    return frames, len(episode["actions"])


def imagine(
    world: WorldModel,
    context: np.ndarray,
    actions: Sequence[torch.Tensor],
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Play ``world`` as ``wmkit play`` does: reset on the real ``context`` frames
    (``uint8 [K, H, W, 3]``), then one ``step`` per action.

    Returns ``uint8 [K + len(actions), H, W, 3]``: the context, then the model's frames.
    """
    if context.ndim != 4 or context.shape[-1] != 3 or context.dtype != np.uint8:
        raise ValueError(
            f"context must be uint8 [K, H, W, 3]; got {context.dtype} {tuple(context.shape)}"
        )
    video = to_float_video(context)  # [1, K, C, H, W]
    session = PlaySession(world, context=lambda: video, context_frames=len(context), device=device)
    session.reset()
    frames = [*context]
    for action in actions:
        frame = session.step(action)
        if frame.shape != context.shape[1:]:
            raise ValueError(
                f"the world model makes {frame.shape[0]}x{frame.shape[1]} frames but the "
                f"environment {context.shape[1]}x{context.shape[2]}: pass the model's "
                "--resolution"
            )
        frames.append(frame)
    return np.stack(frames)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def side_by_side(
    real: np.ndarray,
    model: np.ndarray,
    captions: Sequence[str],
    titles: tuple[str, str] = ("real game", "world model"),
    scale: int = 6,
    gap: int = 8,
) -> np.ndarray:
    """Compose ``uint8 [T, H, W, 3]`` real and model frames into ``uint8 [T, H', W', 3]``:
    a title row, the two frames upscaled ``scale``× (nearest) side by side, a caption row.
    """
    if real.shape != model.shape or real.ndim != 4 or real.shape[-1] != 3:
        raise ValueError(
            f"real and model frames must both be [T, H, W, 3]; got {tuple(real.shape)} and "
            f"{tuple(model.shape)}"
        )
    if len(captions) != len(real):
        raise ValueError(f"need one caption per frame ({len(real)}); got {len(captions)}")
    if scale < 1 or gap < 0:
        raise ValueError(f"scale must be >= 1 and gap >= 0; got {scale}, {gap}")
    _, h, w, _ = real.shape
    ph, pw = h * scale, w * scale
    text_h = max(16, pw // 10)
    font = _font(text_h - 4)
    width, height = 2 * pw + 3 * gap, ph + 2 * (text_h + gap) + gap
    base = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(base)
    for i, title in enumerate(titles):
        draw.text((gap + i * (pw + gap) + pw // 2, gap), title, _TEXT, font, anchor="mt")
    canvas = np.asarray(base).copy()
    top = gap + text_h + gap
    out = []
    for r, m, caption in zip(real, model, captions, strict=True):
        frame = canvas.copy()
        for i, panel in enumerate((r, m)):
            left = gap + i * (pw + gap)
            frame[top : top + ph, left : left + pw] = panel.repeat(scale, 0).repeat(scale, 1)
        image = Image.fromarray(frame)
        ImageDraw.Draw(image).text((width // 2, top + ph + gap), caption, _TEXT, font, anchor="mt")
        out.append(np.asarray(image))
    return np.stack(out)


def save_gif(path: str | Path, frames: np.ndarray, fps: float, hold_last: float = 1.5) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames as a looping GIF at ``fps``, the last frame held
    ``hold_last`` seconds longer so the loop's end can be read."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0; got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step_ms = round(1000 / fps)
    durations = [step_ms] * len(frames)
    durations[-1] += round(1000 * hold_last)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=True
    )
    return path


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="world model directory")
    p.add_argument("--env", default="crafter", help="the real environment (default crafter)")
    p.add_argument("--resolution", type=int, default=64, help="environment frame size")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="environment option (repeatable; values are read as JSON)")  # fmt: skip
    p.add_argument("--keys", default=DEFAULT_KEYS,
                   help="key presses, one per step: KEY or KEY*N, comma-separated; 'Space' "
                   "and 'none' (no key) stand for themselves (default: %(default)s)")  # fmt: skip
    p.add_argument("--bindings", type=Path, help="JSON key bindings (as wmkit play --bindings)")
    p.add_argument("--context", type=int, default=1,
                   help="real frames the model is reset on, as wmkit play --context")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="environment seed (and torch seed)")
    p.add_argument("--scale", type=int, default=6, help="nearest-neighbour upscaling")
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("play.gif"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.context < 1:
        raise SystemExit(f"--context must be >= 1; got {args.context}")
    env_kwargs = {}
    for item in args.env_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env-arg needs KEY=VALUE; got {item!r}")
        env_kwargs[key] = _parse_value(value)
    world = load_pretrained(args.world, map_location=args.device)
    spec = world.action_spec
    bindings = Bindings.load(args.bindings, spec) if args.bindings else default_bindings(spec)
    keys = parse_keys(args.keys)
    if len(keys) < args.context:
        raise SystemExit(f"--keys gives {len(keys)} steps; --context {args.context} needs more")
    actions = actions_for_keys(bindings, keys)

    env = make_env(args.env, args.resolution, **env_kwargs)
    spec.check_compatible(env.action_spec, "environment action spec")
    real, n = record_real(env, actions, args.seed)
    env.close()
    if n < args.context:
        raise SystemExit(f"the episode ended after {n} steps, inside the context")
    # The first context - 1 actions led to the context frames; the model takes the rest.
    torch.manual_seed(args.seed)
    model = imagine(world, real[: args.context], actions[args.context - 1 : n], args.device)

    names = spec.names if spec.kind == "discrete" else None
    captions = []
    for t in range(n + 1):
        if t == 0:
            captions.append("start: the same real frame")
            continue
        key = keys[t - 1]
        shown = "no key" if key is None else ("Space" if key == " " else key)
        action = actions[t - 1]
        label = names[int(action)] if names else str(action.tolist())
        where = " (context)" if t < args.context else ""
        captions.append(f"step {t}: {shown} -> {label}{where}")
    titles = (f"real {args.env.capitalize()}", "world model (wmkit play)")
    frames = side_by_side(real, model, captions, titles, scale=args.scale)
    path = save_gif(args.out, frames, args.fps)
    size = f"{frames.shape[2]}x{frames.shape[1]}, {path.stat().st_size / 1024:.0f} KB"
    print(f"wrote {path}: {len(frames)} frames, {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
