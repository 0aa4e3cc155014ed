"""``loaded_script``: a command-line script that is not part of a package (``tools/*.py``)
imported as a module, so its tests can call its functions."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

__all__ = ["loaded_script"]


@contextmanager
def loaded_script(path: str | os.PathLike) -> Iterator[ModuleType]:
    """The Python file at ``path`` imported as a module named after its stem, registered in
    ``sys.modules`` while the ``with`` block lasts (dataclasses and pickling look a class's
    module up there) and removed after it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(path.stem, None)
