"""A model's parts as components: built from ``{"class_path", "init_args"}`` or passed in as
objects, and written back to the same form for ``config.json``.

A component is named in a config the way LightningCLI names a class (``class_path`` may also
name a function that returns one), so a new network, objective, layout or decoding order is a
new class and a line of YAML, not a new ``Literal`` value and a branch (diffusers' pipeline
components). ``ARWorldModel``'s transformer, layout and decoder and ``DiffusionWorldModel``'s
network and objective are built so.

A component object reports the spec it is rebuilt from with ``to_config()``; :func:`init_config`
writes one that reads every ``__init__`` argument back from the attribute of the same name.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, TypeVar

__all__ = ["build_component", "component_config", "init_config", "record_components"]

T = TypeVar("T")


def build_component(spec: Any, base: type[T] | tuple[type, ...], what: str) -> T:
    """``spec`` itself if it is an instance of ``base``, else the object its
    ``{"class_path": "pkg.module.Name", "init_args": {...}}`` builds, checked against
    ``base``. ``what`` names the argument in errors. Dataclass arguments given as dicts (an
    ``ActionSpec`` in YAML) are rebuilt from the class's annotations, as ``from_pretrained``
    does."""
    if isinstance(spec, base):
        return spec  # type: ignore[return-value]
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise ValueError(
            f"{what} must be an object or a dict with 'class_path' (and 'init_args'); got {spec!r}"
        )
    unknown = sorted(set(spec) - {"class_path", "init_args"})
    if unknown:
        raise ValueError(
            f"{what} spec has unknown key(s) {unknown}; expected class_path, init_args"
        )
    module, _, name = spec["class_path"].rpartition(".")
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"{what} class_path {spec['class_path']!r} cannot be imported: {e}") from e
    from wmkit.core.pretrained import _decode_dataclasses

    init_args = spec.get("init_args") or {}
    obj = target(
        **(_decode_dataclasses(target, init_args) if isinstance(target, type) else init_args)
    )
    if not isinstance(obj, base):
        names = base.__name__ if isinstance(base, type) else " or ".join(b.__name__ for b in base)
        raise TypeError(
            f"{what} class_path {spec['class_path']!r} built a {type(obj).__name__}, not a {names}"
        )
    return obj


def component_config(component: Any) -> dict[str, Any] | None:
    """The ``{"class_path", "init_args"}`` a component reports (``to_config()``), or ``None``
    when it has none (``save_pretrained`` then refuses the model)."""
    to_config = getattr(component, "to_config", None)
    return to_config() if callable(to_config) else None


def init_config(obj: Any, stop: type = object) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of ``obj``: its class, and each named ``__init__``
    argument of the classes in its MRO (down to ``stop``) read from the attribute of that
    name."""
    cls = type(obj)
    args: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object or not issubclass(klass, stop):
            break
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in args:
                continue
            if not hasattr(obj, name):
                raise TypeError(
                    f"{cls.__name__} cannot report its config: no attribute for its __init__ "
                    f"argument {name!r}"
                )
            value = getattr(obj, name)
            args[name] = list(value) if isinstance(value, tuple) else value
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}


def record_components(
    config: dict[str, Any], specs: dict[str, Any], built: dict[str, Any]
) -> dict[str, Any]:
    """``config`` (what ``save_pretrained`` writes) with each component recorded as its spec
    if it was given as one, else as its object's ``to_config()``; one without a config is
    left out, so that ``save_pretrained`` refuses the model rather than write a wrong one."""
    saved = dict(config)
    for name, spec in specs.items():
        entry = spec if isinstance(spec, dict) else component_config(built[name])
        if entry is None:
            saved.pop(name, None)
        else:
            saved[name] = entry
    return saved
