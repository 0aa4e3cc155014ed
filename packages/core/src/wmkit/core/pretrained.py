"""`PretrainedMixin`: ``save_pretrained(dir)`` / ``from_pretrained(dir)`` for every wmkit model.

A saved model is a directory with ``config.json`` (the ``__init__`` arguments, plus the
class and format version) and ``model.safetensors`` (the weights). Built on
huggingface_hub's ``PyTorchModelHubMixin`` (which captures the ``__init__`` arguments and
writes both files and a model card), with three differences that matter here:

- ``from_pretrained`` takes a **local path only** (no hub look-up: our machines have no
  network and a typo must not turn into a download attempt);
- loading is **strict** (the hub mixin defaults to ``strict=False``, which silently keeps
  random weights for missing keys) and every failure names the file and what is wrong:
  missing directory or file, unreadable JSON, corrupt safetensors, a config written by a
  different class, missing/unexpected keys and shape mismatches;
- saving refuses a model whose ``__init__`` arguments cannot all be written to JSON
  (they would be silently dropped and the model reloaded with defaults).

A model that holds a frozen component outside its state dict (a world model's tokenizer)
names it in ``frozen_components``: ``save_pretrained`` saves it into the subdirectory of that
name with the component's own ``save_pretrained`` and records ``"./<name>"``, which
``from_pretrained`` resolves against the model's directory, so a saved model loads from any
working directory and can be copied elsewhere in one piece.

A class whose parameter layout changed between versions overrides ``upgrade_state_dict``
to rewrite older files' weights into the current layout on load (diffusers converts its
deprecated attention blocks the same way), and one whose ``__init__`` arguments changed
overrides ``upgrade_config`` to rewrite older ``config.json`` files' arguments, so saved
models keep loading.

Weights are never unpickled.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

__all__ = [
    "CONFIG_NAME",
    "MODEL_ENTRY_POINT_GROUP",
    "WEIGHTS_NAME",
    "PretrainedLoadError",
    "PretrainedMixin",
    "load_pretrained",
    "read_json_object",
    "resolve_model_class",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
_META_KEYS = ("_wmkit_class", "_wmkit_format")

T = TypeVar("T", bound="PretrainedMixin")


class PretrainedLoadError(ValueError):
    """A pretrained directory exists but does not hold what the class needs."""


def read_json_object(path: Path, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """The JSON object (a dict) in the UTF-8 file ``path``; ``error`` (a ValueError) naming
    the file when it is not valid JSON or holds something other than an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object")
    return data


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class PretrainedMixin(PyTorchModelHubMixin, library_name="wmkit", tags=["wmkit"]):
    """Mix into an ``nn.Module`` whose ``__init__`` takes JSON-serialisable arguments.

    Example::

        class ToyNet(nn.Module, PretrainedMixin):
            def __init__(self, width: int = 8):
                super().__init__()
                self.lin = nn.Linear(width, width)

        ToyNet(width=4).save_pretrained("out/toy")
        net = ToyNet.from_pretrained("out/toy")

    Dataclass arguments (such as ``ActionSpec``) are written as dicts and rebuilt from the
    annotation on load.

    ``frozen_components`` names ``__init__`` arguments that take a frozen component or the
    directory it was saved to (``None`` allowed); the model's attribute of the same name holds
    the component. Each is saved beside the weights (see the module docstring).

    ``upgrade_state_dict`` rewrites weights saved by an older layout of the class; the
    strict key and shape check runs on its result. ``upgrade_config`` does the same for the
    ``__init__`` arguments of an older ``config.json``.
    """

    frozen_components: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights read from a file, rewritten into this version's layout (renamed,
        merged or split keys). The default returns them unchanged."""
        return state

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """A ``config.json``'s contents, rewritten into this version's ``__init__`` arguments
        (renamed, merged or split arguments). The default returns them unchanged."""
        return config

    # ------------------------------------------------------------------------------ save
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:  # type: ignore[override]
        """Write ``config.json`` + ``model.safetensors`` (+ a model card) to ``save_directory``."""
        if kwargs.get("push_to_hub"):
            raise ValueError("wmkit saves to local directories only; push_to_hub is not supported")
        config = dict(self._hub_mixin_config or {})
        components = {name: getattr(self, name) for name in self.frozen_components}
        for name, component in components.items():
            if component is not None and not hasattr(component, "save_pretrained"):
                raise TypeError(
                    f"cannot save {type(self).__name__}: its {name} "
                    f"{type(component).__name__} has no save_pretrained"
                )
            config[name] = None if component is None else f"./{name}"
        missing = [
            name
            for name, p in self._hub_mixin_init_parameters.items()
            if name != "self"
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            and name not in config
        ]
        if missing:
            raise TypeError(
                f"cannot save {type(self).__name__}: __init__ argument(s) {missing} are not "
                "JSON-serialisable (or have no default and were not passed), so "
                "from_pretrained could not rebuild the model. Pass plain values, lists, dicts "
                "or dataclasses."
            )
        config["_wmkit_class"] = _qualname(type(self))
        config["_wmkit_format"] = FORMAT_VERSION
        for name, component in components.items():
            if component is not None:
                component.save_pretrained(Path(save_directory) / name)
        super().save_pretrained(Path(save_directory), config=config)

    # ------------------------------------------------------------------------------ load
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[T],
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        map_location: str | torch.device = "cpu",
        **overrides: Any,
    ) -> T:
        """Rebuild the model from a local directory written by ``save_pretrained``.

        ``overrides`` replace ``__init__`` arguments from the config (for arguments that do
        not change parameter shapes, e.g. a dropout rate). Returns the model in eval mode, on
        ``map_location``.
        """
        directory = Path(pretrained_model_name_or_path)
        if not directory.exists():
            raise FileNotFoundError(
                f"no pretrained directory at {directory} (wmkit loads from local paths only; "
                "write one with save_pretrained or point to the right path)"
            )
        if not directory.is_dir():
            raise NotADirectoryError(f"{directory} is a file; from_pretrained needs the directory")
        config_path = directory / CONFIG_NAME
        weights_path = directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path.name} is missing from {directory}")
        config = read_json_object(config_path, PretrainedLoadError)
        saved_class = config.get("_wmkit_class")
        if saved_class is not None and saved_class.rsplit(".", 1)[-1] != cls.__name__:
            raise PretrainedLoadError(
                f"{config_path} was saved by {saved_class}; cannot load it as {_qualname(cls)}"
            )
        config = cls.upgrade_config(config)
        params = {
            n: p
            for n, p in cls._hub_mixin_init_parameters.items()
            if n != "self"
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        unknown = sorted(set(config) - set(params) - set(_META_KEYS))
        if unknown:
            raise PretrainedLoadError(
                f"{config_path} has argument(s) {unknown} that {cls.__name__}.__init__ does "
                "not take (saved by a different class or version?)"
            )
        for name in cls.frozen_components:
            saved = config.get(name)
            if name in overrides or not (isinstance(saved, str) and saved.startswith("./")):
                continue  # absolute or working-directory paths of older saves: as written
            local = directory / saved[2:]
            if (local / CONFIG_NAME).is_file() or not Path(saved).exists():
                overrides[name] = str(local)
        bad_overrides = sorted(set(overrides) - set(params))
        if bad_overrides:
            raise TypeError(f"{cls.__name__}.__init__ takes no argument(s) {bad_overrides}")
        _check_safetensors(weights_path)
        decoded = _decode_dataclasses(cls, {k: v for k, v in config.items() if k in params})
        decoded.update(overrides)
        return super().from_pretrained(directory, map_location=str(map_location), **decoded)

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls: type[T],
        *,
        model_id: str,
        map_location: str = "cpu",
        revision: Any = None,
        cache_dir: Any = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: Any = None,
        **model_kwargs: Any,
    ) -> T:
        for key in _META_KEYS:
            model_kwargs.pop(key, None)
        model = cls(**model_kwargs)
        weights_path = Path(model_id) / WEIGHTS_NAME
        state = cls.upgrade_state_dict(load_file(str(weights_path)))
        _check_state_dict_matches(model, state, weights_path)
        # every key matched (tied weights are saved once and fill their twins through the
        # storage they share), so a non-strict load loads them all
        model.load_state_dict(state, strict=False)
        # load_state_dict copies into the parameters where they are (the CPU): move them
        model.to(torch.device(map_location))
        model.eval()
        return model


def _decode_dataclasses(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """Rebuild dataclass arguments (e.g. ``ActionSpec``) from their JSON dicts.

    The hub mixin only decodes when annotations are real classes; with ``from __future__
    import annotations`` they are strings, so resolve them here.
    """
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        return dict(config)
    out = dict(config)
    for name, value in config.items():
        if not isinstance(value, dict):
            continue
        hint = hints.get(name)
        candidates = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        for typ in candidates:
            if isinstance(typ, type) and dataclasses.is_dataclass(typ):
                from_dict = getattr(typ, "from_dict", None)
                out[name] = from_dict(value) if from_dict else typ(**value)
                break
    return out


def _check_safetensors(path: Path) -> None:
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                f.get_slice(key)
    except (SafetensorError, OSError, ValueError) as e:
        raise PretrainedLoadError(f"{path} is not a readable safetensors file: {e}") from e


def _check_state_dict_matches(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path
) -> None:
    saved = {k: tuple(v.shape) for k, v in state.items()}
    # safetensors stores tied weights once; compare against the de-duplicated state dict.
    expected: dict[str, tuple[int, ...]] = {}
    seen: dict[int, str] = {}
    for k, v in model.state_dict().items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1 and k not in saved:
            continue
        seen[ptr] = k
        expected[k] = tuple(v.shape)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    mismatched = [
        f"{k}: file {saved[k]} vs model {expected[k]}"
        for k in sorted(set(saved) & set(expected))
        if saved[k] != expected[k]
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:8]}{' …' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched[:8]}")
        raise PretrainedLoadError(
            f"{path} does not match {type(model).__name__} built from config.json: "
            + "; ".join(parts)
        )


MODEL_ENTRY_POINT_GROUP = "wmkit.models"


def load_pretrained(
    pretrained_dir: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> PretrainedMixin:
    """Load any wmkit model from its directory, without naming its class.

    The class comes from ``_wmkit_class`` in ``config.json`` (written by ``save_pretrained``).
    This is how a later stage loads an earlier stage's output by path alone (DESIGN.md §5),
    e.g. a world model's frozen tokenizer, without importing a sibling package.

    A directory is data, so the name it gives is checked before anything is imported: only
    classes under ``wmkit.`` or registered in the ``wmkit.models`` entry-point group (how a
    third-party package offers its models; see :func:`resolve_model_class`) are imported, and
    the class must be a :class:`PretrainedMixin`.
    """
    directory = Path(pretrained_dir)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        if not directory.exists():
            raise FileNotFoundError(f"no pretrained directory at {directory}")
        raise FileNotFoundError(f"{CONFIG_NAME} is missing from {directory}")
    try:
        qualname = json.loads(config_path.read_text(encoding="utf-8")).get("_wmkit_class")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise PretrainedLoadError(f"{config_path} is not a valid JSON object: {e}") from e
    if not qualname:
        raise PretrainedLoadError(
            f"{config_path} does not name its class (_wmkit_class); load it with "
            "TheClass.from_pretrained(...)"
        )
    cls = resolve_model_class(qualname, source=config_path)
    return cls.from_pretrained(directory, map_location=map_location)


def resolve_model_class(qualname: Any, *, source: str | os.PathLike = "config") -> type:
    """The :class:`PretrainedMixin` subclass named ``module.Class`` by ``source``.

    The name is checked before any import, so a crafted ``config.json`` cannot make wmkit
    import an arbitrary module: it must lie under ``wmkit.`` or equal the target
    (``module:Class``) of an entry point in the ``wmkit.models`` group, which a package
    declares in its ``pyproject.toml``::

        [project.entry-points."wmkit.models"]
        my-world = "my_package.world:MyWorldModel"

    Entry points are only compared by name; none but the matching one is loaded.
    """
    if not isinstance(qualname, str) or "." not in qualname:
        raise PretrainedLoadError(
            f"{source} names its class as {qualname!r}; expected a 'module.Class' string"
        )
    module_name, _, class_name = qualname.rpartition(".")
    registered = [
        ep
        for ep in entry_points(group=MODEL_ENTRY_POINT_GROUP)
        if ep.module == module_name and ep.attr == class_name
    ]
    if not (module_name == "wmkit" or module_name.startswith("wmkit.") or registered):
        raise PretrainedLoadError(
            f"{source} names class {qualname}, which is neither under 'wmkit.' nor registered "
            f"in the '{MODEL_ENTRY_POINT_GROUP}' entry-point group; refusing to import it "
            "(a package that ships models registers them there)"
        )
    try:
        if registered:
            cls = registered[0].load()
        else:
            cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise PretrainedLoadError(
            f"{source} was saved by {qualname}, which cannot be imported ({e}); install "
            "the package that defines it"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, PretrainedMixin)):
        raise PretrainedLoadError(f"{qualname} named in {source} is not a wmkit model")
    return cls
