"""Simulators ``wmkit record`` can drive, by name (DESIGN.md §4).

Each simulator is an optional dependency imported only when its env is built; a missing
one raises ``ImportError`` naming the extra to install (``pip install 'wmkit-core[crafter]'``).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from wmkit.core.data.envs.base import (
    ExplorationPolicy,
    RecordableEnv,
    StickyRandomPolicy,
    random_action,
)

__all__ = [
    "ENVS",
    "EnvFactory",
    "ExplorationPolicy",
    "RecordableEnv",
    "StickyRandomPolicy",
    "make_env",
    "random_action",
]


@dataclass(frozen=True)
class EnvFactory:
    """Lazy constructor of one env: ``module:cls`` is imported on first use.

    Attributes:
        target: ``"module:ClassName"`` of a :class:`RecordableEnv` subclass.
        help: one line for ``wmkit record --help``.
    """

    target: str
    help: str

    def load(self) -> type[RecordableEnv]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def options(self) -> dict[str, Any]:
        """The env's keyword options and their defaults (from its ``__init__``)."""
        params = inspect.signature(self.load().__init__).parameters
        return {k: p.default for k, p in params.items() if k not in ("self", "resolution")}

    def __call__(self, resolution: int, **kwargs: Any) -> RecordableEnv:
        return self.load()(resolution, **kwargs)


ENVS: dict[str, EnvFactory] = {
    "crafter": EnvFactory(
        "wmkit.core.data.envs.crafter:CrafterEnv",
        "Crafter 2D open world, 17 discrete actions, sticky random policy",
    ),
    "metaworld": EnvFactory(
        "wmkit.core.data.envs.metaworld:MetaWorldEnv",
        "Meta-World Sawyer arm (--task, --camera), 4-D continuous, noisy scripted expert",
    ),
    "vizdoom": EnvFactory(
        "wmkit.core.data.envs.vizdoom:VizDoomEnv",
        "ViZDoom first-person (--scenario), multi-binary buttons, sticky random policy",
    ),
    "atari": EnvFactory(
        "wmkit.core.data.envs.atari:AtariEnv",
        "Atari 2600 (--game MsPacman), DIAMOND's preprocessing, minimal action set, sticky random",
    ),
}


def make_env(name: str, resolution: int = 64, **kwargs: Any) -> RecordableEnv:
    """Build env ``name`` (a key of ``ENVS``) rendering ``resolution``² frames.

    ``kwargs`` are the env's options (``task``, ``camera``, ``scenario``, ``max_steps``,
    ...); ``None`` values mean the default. Unknown names and options raise ``ValueError``
    listing the known ones.
    """
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; known envs: {', '.join(ENVS)}")
    if int(resolution) < 1:
        raise ValueError(f"resolution must be a positive int; got {resolution!r}")
    factory = ENVS[name]
    options = factory.options()
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"env {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
            + ", ".join(f"{k}={v!r}" for k, v in options.items())
        )
    return factory(int(resolution), **{k: v for k, v in kwargs.items() if v is not None})
