"""Loaders, CPU trainers and CPU stage runs for the tokenizer LightningModule and config
tests (a unique module name: pytest imports every package's tests into one process)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from wmkit.core import run_stage
from wmkit.core.testing import cpu_trainer as quiet_trainer

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]


def clip_loader(frames: torch.Tensor, repeats: int = 1) -> DataLoader:
    """Batches of 2 ``{"frames": [2, T, C, H, W]}`` over ``frames`` repeated ``repeats`` times."""
    return DataLoader([{"frames": f} for f in frames] * repeats, batch_size=2, collate_fn=_collate)


def _collate(items: list[dict]) -> dict:
    return {"frames": torch.stack([i["frames"] for i in items])}


def cpu_trainer(**kw) -> L.Trainer:
    """Core's quiet CPU trainer without the sanity check; ``kw`` overrides."""
    return quiet_trainer(**{"num_sanity_val_steps": 0, **kw})


def fit_and_test(cfg: Path, overrides: list[str], fast_dev_run: int = 1) -> None:
    """``fit`` then ``test`` of the stage config ``cfg`` with ``--trainer.fast_dev_run`` and
    ``overrides``; both must finish."""
    for sub in ("fit", "test"):
        argv = [sub, "-c", str(cfg), f"--trainer.fast_dev_run={fast_dev_run}", *overrides, *QUIET]
        cli = run_stage(L.LightningModule, L.LightningDataModule, argv)
        assert cli.trainer.state.finished, (cfg.name, sub)


def recorded_data_overrides(
    dataset: Path,
    tmp_path: Path,
    batch_size: int,
    resolution: int | None = None,
    clip_length: int | None = None,
) -> list[str]:
    """Overrides that run a real config on the recorded ``dataset`` on one CPU, exporting
    to ``tmp_path / "export"`` (``None``: the config's resolution / clip length)."""
    data = {"resolution": resolution, "clip_length": clip_length}
    return [
        f"--data.init_args.path={dataset}",
        *[f"--data.init_args.{k}={v}" for k, v in data.items() if v is not None],
        f"--data.init_args.batch_size={batch_size}",
        "--data.init_args.num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--model.init_args.export_dir={tmp_path / 'export'}",
        f"--trainer.default_root_dir={tmp_path}",
    ]
