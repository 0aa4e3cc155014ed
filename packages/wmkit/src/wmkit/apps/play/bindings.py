"""Keyboard and mouse bindings for playing a world model, derived from its `ActionSpec`.

A binding is a list of *components*, one per entry of the action (one for a discrete
spec, one per ``nvec`` entry for multi-discrete, one per dimension for continuous). Each
component has a ``default`` value (no input), ``keys`` mapping browser key names
(``KeyboardEvent.key``, letters lower-cased, ``" "`` for space) to values, and optionally a
``mouse`` axis (``"x"`` or ``"y"``) with a ``scale``. The action for an input state is, per
component: the value of the most recently pressed bound key, else the mouse delta times the
scale (continuous) or the default bin moved by it (discrete), else the default.

Defaults follow the action names where they are known (arrows/WASD for moves, space for
``do``/``attack``/``jump``/``grip``), then free keys in keyboard order. Users override them
with a JSON file of the same layout (``wmkit play --bindings FILE``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from wmkit.core import ActionSpec

__all__ = ["Bindings", "Component", "InputState", "default_bindings"]

_FREE_KEYS = [*"1234567890qerfzxcvtgbyhnujmikolp", "[", "]", ";", "'", ",", ".", "/"]
_NAMED = {  # action name fragments -> preferred keys
    "noop": [], "stay": [], "none": [],
    "up": ["ArrowUp", "w"], "forward": ["w", "ArrowUp"], "move_up": ["ArrowUp", "w"],
    "down": ["ArrowDown", "s"], "backward": ["s", "ArrowDown"], "back": ["s", "ArrowDown"],
    "move_down": ["ArrowDown", "s"],
    "left": ["ArrowLeft", "a"], "move_left": ["a", "ArrowLeft"], "turn_left": ["ArrowLeft", "q"],
    "right": ["ArrowRight", "d"], "move_right": ["d", "ArrowRight"],
    "turn_right": ["ArrowRight", "e"],
    "do": [" "], "attack": [" "], "jump": [" "], "use": ["f"], "sleep": ["z"],
    "grip": [" "], "speed": ["Shift"], "crouch": ["c"],
}  # fmt: skip


@dataclass
class Component:
    """One entry of the action and how input sets it."""

    name: str
    default: float
    keys: dict[str, float] = field(default_factory=dict)
    mouse: str | None = None
    scale: float = 1.0
    low: float = 0.0
    high: float = 0.0


@dataclass
class InputState:
    """What the player is doing now: keys held (in press order) and the mouse movement since
    the last frame, in pixels."""

    keys: list[str] = field(default_factory=list)
    mouse: tuple[float, float] = (0.0, 0.0)


@dataclass
class Bindings:
    """Bindings for one ``ActionSpec``; ``action(input)`` gives ``[*action_shape]``."""

    spec: ActionSpec
    components: list[Component]

    def __post_init__(self) -> None:
        if len(self.components) != self.spec.num_tokens:
            raise ValueError(
                f"bindings have {len(self.components)} components but {self.spec.describe()} "
                f"has {self.spec.num_tokens}"
            )
        for c in self.components:
            for key, value in c.keys.items():
                if not c.low <= value <= c.high:
                    raise ValueError(
                        f"binding {key!r} -> {value} of component {c.name!r} is outside "
                        f"[{c.low}, {c.high}]"
                    )
            if c.mouse not in (None, "x", "y"):
                raise ValueError(f"component {c.name!r}: mouse must be 'x', 'y' or null")

    def action(self, state: InputState) -> torch.Tensor:
        """The action for an input state, valid under ``spec`` (shape ``action_shape``)."""
        values = []
        for c in self.components:
            value: float | None = None
            for key in reversed(state.keys):  # most recent press wins
                if key in c.keys:
                    value = c.keys[key]
                    break
            if value is None and c.mouse is not None:
                delta = state.mouse[0 if c.mouse == "x" else 1] * c.scale
                if delta:
                    value = c.default + delta
            value = c.default if value is None else value
            value = min(max(value, c.low), c.high)
            values.append(value if self.spec.kind == "continuous" else round(value))
        if self.spec.kind == "continuous":
            out = torch.tensor(values, dtype=torch.float32)
        else:
            out = torch.tensor(values, dtype=torch.long)
        return out.reshape(self.spec.action_shape)

    def to_dict(self) -> dict[str, Any]:
        components = [asdict(c) for c in self.components]
        return {"action_spec": self.spec.to_dict(), "components": components}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path, spec: ActionSpec) -> Bindings:
        """Read bindings from JSON (the ``to_dict`` layout) and check them against ``spec``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no bindings file at {path}")
        try:
            data = json.loads(path.read_text())
            components = [Component(**c) for c in data["components"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a bindings file: {e}") from e
        if "action_spec" in data:
            saved = ActionSpec.from_dict(data["action_spec"])
            spec.check_compatible(saved, "bindings' action spec")
        return cls(spec, components)

    def describe(self) -> list[str]:
        """Human-readable lines (``key: component = value``) for the play page's help box."""
        lines = []
        for c in self.components:
            for key, value in c.keys.items():
                shown = "Space" if key == " " else key
                label = c.name if self.spec.kind != "discrete" else f"{value:g}"
                if self.spec.kind == "discrete" and self.spec.names:
                    label = self.spec.names[int(value)]
                    lines.append(f"{shown}: {label}")
                else:
                    lines.append(f"{shown}: {label} = {value:g}")
            if c.mouse:
                lines.append(f"mouse {c.mouse}: {c.name}")
        return lines


def _preferred(name: str) -> list[str]:
    lowered = name.lower()
    if lowered in _NAMED:
        return _NAMED[lowered]
    for fragment, keys in _NAMED.items():
        if fragment and fragment in lowered.split("_"):
            return keys
    return []


def _take(preferred: Sequence[str], used: set[str]) -> str | None:
    for key in [*preferred, *_FREE_KEYS]:
        if key not in used:
            used.add(key)
            return key
    return None


def default_bindings(spec: ActionSpec) -> Bindings:
    """Sensible bindings for any spec (see the module docstring)."""
    used: set[str] = set()
    if spec.kind == "discrete":
        names = spec.names or tuple(str(i) for i in range(spec.n))  # type: ignore[arg-type]
        keys: dict[str, float] = {}
        # Index 0 is "no input" (noop/stay in Crafter and ViZDoom's gym wrapper).
        for i, name in enumerate(names):
            if i == 0:
                continue
            key = _take(_preferred(name), used)
            if key is not None:
                keys[key] = float(i)
        return Bindings(spec, [Component("action", 0.0, keys, low=0, high=spec.n - 1)])  # type: ignore[operator]
    if spec.kind == "multi_discrete":
        components = []
        axes = iter(["x", "y"])
        for i, n in enumerate(spec.nvec):  # type: ignore[union-attr]
            name = spec.names[i] if spec.names else f"c{i}"
            if n == 2:
                key = _take(_preferred(name), used)
                components.append(Component(name, 0.0, {key: 1.0} if key else {}, low=0, high=1))
            else:
                centre = float(n // 2)
                up, down = _take([], used), _take([], used)
                keys = {k: v for k, v in ((up, float(n - 1)), (down, 0.0)) if k}
                axis = next(axes, None)
                components.append(
                    Component(name, centre, keys, mouse=axis, scale=0.2, low=0, high=n - 1)
                )
        return Bindings(spec, components)
    components = []
    pairs = [("d", "a"), ("w", "s"), ("e", "q"), (" ", "Shift"), ("l", "j"), ("i", "k")]
    for i in range(spec.num_tokens):
        lo, hi = spec.low[i], spec.high[i]  # type: ignore[index]
        name = spec.names[i] if spec.names else f"a{i}"
        default = 0.0 if lo <= 0.0 <= hi else (lo + hi) / 2
        keys = {}
        if i < len(pairs):
            plus, minus = pairs[i]
            keys = {plus: hi, minus: lo}
        axis = "x" if i == 0 else "y" if i == 1 else None
        span = hi - lo if math.isfinite(hi - lo) else 2.0
        components.append(
            Component(name, default, keys, mouse=axis, scale=span / 200, low=lo, high=hi)
        )
    return Bindings(spec, components)
