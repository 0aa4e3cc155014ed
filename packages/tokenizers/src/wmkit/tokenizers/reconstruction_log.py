"""Reconstruction videos for tokenizer training: a GIF per epoch, and TensorBoard when used.

Every tokenizer LightningModule calls it through ``TokenizerLitMixin.log_evaluation``: call
:func:`log_reconstructions` from every rank (``trainer.log_dir`` is a collective under DDP);
only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from wmkit.core.video import frame_grid
from wmkit.core.video_io import write_gif

__all__ = ["log_reconstructions"]


def log_reconstructions(
    module: L.LightningModule, frames: Tensor, recon: Tensor, split: str, batch_idx: int
) -> Path | None:
    """On the first validation batch of every ``hparams.log_videos_every_n_epochs``-th epoch,
    write ground truth beside reconstruction (``[B, T, C, H, W]``, first sample) to
    ``<log_dir>/reconstructions/epochNNNN.gif`` and to a TensorBoard logger if present."""
    every = module.hparams.log_videos_every_n_epochs
    if split != "val" or batch_idx != 0 or every <= 0 or module.current_epoch % every:
        return None
    trainer = module.trainer
    root = Path(trainer.log_dir or trainer.default_root_dir)  # collective: every rank asks
    path = root / "reconstructions" / f"epoch{module.current_epoch:04d}.gif"
    _write(module, frames.detach(), recon.detach(), path)
    return path


@rank_zero_only
def _write(module: L.LightningModule, frames: Tensor, recon: Tensor, path: Path) -> None:
    grid = frame_grid([frames, recon])  # uint8 [T, H, 2W + pad, C]
    write_gif(path, grid)
    experiment = getattr(module.logger, "experiment", None)
    if experiment is not None and hasattr(experiment, "add_video"):
        video = grid.permute(0, 3, 1, 2).unsqueeze(0)  # [1, T, C, H, W] uint8
        experiment.add_video("reconstruction", video, module.global_step, fps=4)
