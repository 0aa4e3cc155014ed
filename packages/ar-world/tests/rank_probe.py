"""A Lightning callback for test_scaling.py. It lives in a plain module on ``sys.path`` (not in
the test file, which pytest imports under ``--import-mode=importlib``) so that a config can
name it by class path (``rank_probe.RankProbe``) and a ``ddp_spawn`` worker could unpickle it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    """All parameters, detached, as one float32 vector on the CPU."""
    return torch.cat([p.detach().float().cpu().flatten() for p in module.parameters()])


class RankProbe(L.Callback):
    """Saves, per rank, the parameters at the start and end of ``fit``, the first training
    batch it saw and the dtype of the frame logits in training to ``out/rank{r}.pt``."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.record: dict = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_num_threads(1)  # the workers share a 2-core machine

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record = {"start": flat_params(pl_module), "batches": [], "logit_dtypes": []}
        head = pl_module.model.frame_head
        head.register_forward_hook(self._logits_hook)

    def _logits_hook(self, module, args, output) -> None:
        if module.training:
            self.record["logit_dtypes"].append(output.dtype)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.record["batches"].append(batch["frames"].detach().cpu().clone())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record.setdefault("losses", []).append(float(outputs["loss"]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["end"] = flat_params(pl_module)
        self.record["world_size"] = trainer.world_size
        torch.save(self.record, Path(self.out) / f"rank{trainer.global_rank}.pt")
