"""``data_options``: the dataset a stage was trained on, read back from its config.

Evaluation must score a model on the episodes it did not train on. Those follow from the
training config's ``data`` block (``EpisodeDataModule``'s path, reader, split fractions and
split seed), so tools that evaluate a run read that block instead of guessing defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DATA_DEFAULTS", "data_options"]

#: ``EpisodeDataModule`` defaults of the options that decide which frames a split holds.
DATA_DEFAULTS: dict[str, Any] = {
    "path": None,
    "kind": "auto",
    "source_kwargs": {},
    "split": [0.9, 0.05, 0.05],
    "split_seed": 0,
    "resolution": None,
    "frame_skip": 1,
}


def data_options(config: str | os.PathLike) -> dict[str, Any]:
    """The ``DATA_DEFAULTS`` keys of the ``data`` block of stage config ``config`` (a
    LightningCLI YAML: ``data: {class_path: ..., init_args: {...}}`` or ``data: {...}``),
    with ``EpisodeDataModule``'s defaults for what it leaves out."""
    import yaml

    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from e
    data = loaded.get("data") if isinstance(loaded, dict) else None
    if not isinstance(data, dict):
        raise ValueError(f"{path} has no 'data' block (the stage config a model was fit with)")
    init = data.get("init_args", data)
    if not isinstance(init, dict) or not init.get("path"):
        raise ValueError(f"the data block of {path} names no dataset 'path'; got {data!r}")
    out = {k: init.get(k, v) for k, v in DATA_DEFAULTS.items()}
    out["source_kwargs"] = dict(out["source_kwargs"] or {})
    return out
