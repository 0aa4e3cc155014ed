"""Loaders and CPU trainers for the tokenizer LightningModule tests (a unique module name:
pytest imports every package's tests into one process)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from wmkit.core.testing import cpu_trainer as quiet_trainer


def clip_loader(frames: torch.Tensor, repeats: int = 1) -> DataLoader:
    """Batches of 2 ``{"frames": [2, T, C, H, W]}`` over ``frames`` repeated ``repeats`` times."""
    return DataLoader([{"frames": f} for f in frames] * repeats, batch_size=2, collate_fn=_collate)


def _collate(items: list[dict]) -> dict:
    return {"frames": torch.stack([i["frames"] for i in items])}


def cpu_trainer(**kw) -> L.Trainer:
    """Core's quiet CPU trainer without the sanity check; ``kw`` overrides."""
    return quiet_trainer(**{"num_sanity_val_steps": 0, **kw})
