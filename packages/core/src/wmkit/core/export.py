"""Export a trained stage as a ``from_pretrained`` directory: one mechanism for every stage.

Training leaves Lightning checkpoints (weights, optimiser and loop state, for resuming); later
stages, ``wmkit eval`` and ``wmkit play`` load ``save_pretrained`` directories (config.json +
model.safetensors). :class:`ExportPretrained` is the Lightning callback that turns the one
into the other when ``fit`` ends, and :func:`export_checkpoint` does the same for any
checkpoint afterwards (``wmkit <stage> export``).

What a LightningModule exports is :func:`exported_model`: its ``pretrained_model`` property
when it defines one (a tokenizer module exports its EMA weights), else its ``model`` or
``tokenizer`` attribute. Where it goes, first match wins: the callback's ``dirpath`` (the
stage CLI's ``--export_dir``), the module's ``export_dir`` hyperparameter, and otherwise
``pretrained/`` inside the run's log directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from wmkit.core.pretrained import PretrainedMixin

__all__ = ["ExportPretrained", "export_checkpoint", "exported_model", "read_checkpoint_state"]


def exported_model(module: LightningModule) -> PretrainedMixin:
    """The network a stage's LightningModule exports (see the module docstring)."""
    for name in ("pretrained_model", "model", "tokenizer"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, PretrainedMixin):
            return candidate
    raise TypeError(
        f"{type(module).__name__} has nothing to export: give it a `pretrained_model` property "
        "(or a `model` / `tokenizer` attribute) holding a wmkit PretrainedMixin network"
    )


class ExportPretrained(Callback):
    """Write the trained network with ``save_pretrained`` when ``fit`` ends (rank zero only).

    Args:
        dirpath: the directory to write; ``None`` uses the module's ``export_dir``
            hyperparameter, or ``<log dir>/pretrained``.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None) -> None:
        self.dirpath = None if dirpath is None else str(dirpath)
        self.last_export: Path | None = None

    def directory(self, trainer: Trainer, module: LightningModule) -> Path:
        """Where this run's export goes."""
        if self.dirpath:
            return Path(self.dirpath)
        own = getattr(module, "hparams", {}).get("export_dir")
        if own:
            return Path(own)
        return Path(trainer.log_dir or trainer.default_root_dir) / "pretrained"

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run and not self.dirpath and not pl_module.hparams.get("export_dir"):
            return  # like Lightning's checkpoints: a dry run writes nothing it was not asked to
        if not trainer.is_global_zero:
            return
        out = self.directory(trainer, pl_module)
        exported_model(pl_module).save_pretrained(out)
        self.last_export = out
        print(f"wmkit: exported the trained model to {out} (load_pretrained)", file=sys.stderr)


def read_checkpoint_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read as tensors only (never unpickling
    code: ``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError and friends: name the file
        raise ValueError(
            f"{path} cannot be read as tensors only (weights_only=True refused it: {e})"
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise ValueError(f"{path} is not a Lightning checkpoint: no 'state_dict' entry")
    return data["state_dict"]


def export_checkpoint(
    module: LightningModule, checkpoint: str | os.PathLike, out: str | os.PathLike
) -> Path:
    """Load ``checkpoint``'s weights into ``module`` (strictly) and write what it exports
    (:func:`exported_model`) to ``out`` with ``save_pretrained``; returns ``out``."""
    state = read_checkpoint_state(checkpoint)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not fit the configured {type(module).__name__}: missing keys "
            f"{missing[:4]}{'…' if len(missing) > 4 else ''}, unexpected keys "
            f"{unexpected[:4]}{'…' if len(unexpected) > 4 else ''} (is the config the one it "
            "was trained with?)"
        )
    out = Path(out)
    exported_model(module).save_pretrained(out)
    return out
