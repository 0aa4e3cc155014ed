"""Where the parity fixtures of a published family are, for the tests that compare a
converted model with the original's recorded outputs.

The fixtures live outside the repository, in ``../shared/parity/<family>/`` next to a
checkout (they hold released weights), or wherever ``WMKIT_PARITY_DIR`` points (the folder
holding ``<family>/``). A clone without them skips those tests with a reason saying where
they were looked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["needs_parity", "parity_dir"]


def _checkout_root() -> Path:
    """The workspace checkout this package is installed from (editable install), found as
    the folder holding ``packages/core/pyproject.toml``; the working directory otherwise."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "packages" / "core" / "pyproject.toml").is_file():
            return folder
    return Path.cwd()


def parity_dir(family: str) -> Path:
    """``$WMKIT_PARITY_DIR/<family>``, or ``../shared/parity/<family>`` beside the checkout.

    The path is returned whether or not it exists; see :func:`needs_parity` to skip."""
    default = _checkout_root().parent / "shared" / "parity"
    return Path(os.environ.get("WMKIT_PARITY_DIR", default)) / family


def needs_parity(family: str, *parts: str) -> Any:
    """A ``pytest.mark.skipif`` that skips unless ``parity_dir(family) / parts`` exists
    (e.g. ``needs_parity("diamond", "atari")``), with a reason naming the path looked at."""
    import pytest  # only tests call this; pytest is not a dependency of wmkit-core

    path = parity_dir(family).joinpath(*parts)
    return pytest.mark.skipif(
        not path.exists(),
        reason=f"{family} parity fixtures not found at {path} (a clone without ../shared; "
        f"set WMKIT_PARITY_DIR to the directory holding {family}/)",
    )
