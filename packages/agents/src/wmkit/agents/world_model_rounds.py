"""Fine-tuning a world model in rounds through its own LightningModule, as MBPO does between
data collections: each round is a fresh ``Trainer.fit`` on a loader of real clips, with the
optimisers' state carried from one round to the next (``CarryOptimizerState``), so the rounds
continue one optimisation instead of restarting Adam's moments.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable
from typing import Any

import lightning as L

from wmkit.core import WorldModel

__all__ = ["CarryOptimizerState", "fit_round", "world_model_net"]


class CarryOptimizerState(L.Callback):
    """Restores the optimisers' state at the start of each ``fit`` and saves it at the end,
    so fine-tuning rounds continue one optimisation instead of restarting Adam's moments."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.states is not None and len(self.states) == len(trainer.optimizers):
            for opt, state in zip(trainer.optimizers, self.states):
                opt.load_state_dict(state)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]


def world_model_net(world_model: L.LightningModule, model_attr: str) -> WorldModel:
    """The ``WorldModel`` network MBPO imagines with: ``world_model.<model_attr>`` of the
    LightningModule it fine-tunes; a clear TypeError when either is not what MBPO needs."""
    if not isinstance(world_model, L.LightningModule):
        raise TypeError(f"world_model must be a LightningModule; got {type(world_model).__name__}")
    net = getattr(world_model, model_attr, None)
    if not isinstance(net, WorldModel):
        raise TypeError(
            f"world_model.{model_attr} must be a wmkit.core.WorldModel; got {type(net).__name__}"
        )
    return net


def fit_round(
    module: L.LightningModule, loader: Iterable, device: str, carry: CarryOptimizerState
) -> float:
    """One epoch of ``module`` over ``loader`` on ``device`` (quietly: no banners, progress
    bar, checkpoints or logger), the optimiser state carried by ``carry``; leaves ``module``
    in eval mode and returns the last logged training loss (NaN if none was logged)."""
    accelerator = "gpu" if str(device).startswith("cuda") else "cpu"
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)  # no "GPU available" banner every round
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = L.Trainer(
                max_epochs=1, accelerator=accelerator, devices=1, logger=False,
                enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                callbacks=[carry],
            )  # fmt: skip
            trainer.fit(module, train_dataloaders=loader)
    finally:
        log.setLevel(level)
    module.eval()
    metrics = trainer.callback_metrics
    loss = metrics.get("train/loss", metrics.get("loss"))
    return float(loss) if loss is not None else float("nan")
