"""`TokenizerLitMixin`: what every tokenizer LightningModule does beyond its loss.

Validation and test run the module's ``_evaluate(batch, batch_idx, split)`` with ``split``
``"val"`` or ``"test"``; ``_evaluate`` computes its own metrics and hands them, with the
frames and their reconstruction, to :meth:`~TokenizerLitMixin.log_evaluation`, which logs
them as ``<split>/<name>`` (synchronised across ranks) and writes the reconstruction GIF
(:func:`~wmkit.tokenizers.reconstruction_log.log_reconstructions`). What is exported when
fit ends (by ``wmkit.core.export.ExportPretrained``, to ``hparams.export_dir`` unless the
stage's ``--export_dir`` says otherwise) is :attr:`~TokenizerLitMixin.eval_tokenizer`.

:meth:`~TokenizerLitMixin.perceptual_net` gives the frozen LPIPS network for a perceptual
loss or metric (``hparams.perceptual_weight`` and ``perceptual_net``), built on first use.

Mix it in before ``L.LightningModule`` (``class M(TokenizerLitMixin, L.LightningModule)``);
the module keeps its loss and its ``_evaluate``. Its default optimiser is AdamW over the
tokenizer's parameters with ``hparams.lr``, ``betas`` and ``weight_decay``
(:meth:`~TokenizerLitMixin.adamw`; a module with more players overrides
``configure_optimizers``). The mixin puts nothing in the module tree, so checkpoints are the
module's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim import AdamW

from wmkit.tokenizers.losses import load_perceptual
from wmkit.tokenizers.reconstruction_log import log_reconstructions

if TYPE_CHECKING:
    from wmkit.core.pretrained import PretrainedMixin

__all__ = ["TokenizerLitMixin"]


class TokenizerLitMixin:
    """Validation / test steps, metric logging and what to export for a LightningModule
    that trains ``self.tokenizer`` and has ``export_dir`` and ``log_videos_every_n_epochs``
    among its hyperparameters."""

    tokenizer: PretrainedMixin

    @property
    def eval_tokenizer(self) -> PretrainedMixin:
        """The tokenizer that validation, test and export use (override for, e.g., EMA)."""
        return self.tokenizer

    @property
    def pretrained_model(self) -> PretrainedMixin:
        """What ``wmkit.core.export.ExportPretrained`` writes when fit ends: the evaluation
        tokenizer."""
        return self.eval_tokenizer

    def perceptual_net(self, device: torch.device) -> nn.Module | None:
        """The frozen LPIPS network on ``device``, or ``None`` when ``perceptual_weight`` is 0
        or LPIPS is unavailable (warned once). Built on first use and kept outside the module
        tree: not trained, not checkpointed."""
        hparams = self.hparams  # type: ignore[attr-defined]
        if hparams.perceptual_weight <= 0:
            return None
        built = self.__dict__.setdefault("_lpips", [])
        if not built:
            built.append(load_perceptual(hparams.perceptual_net))
        return built[0].to(device) if built[0] is not None else None

    def adamw(self, params: Iterable[nn.Parameter], lr: float | None = None) -> AdamW:
        """AdamW over ``params`` with the module's ``betas`` and ``weight_decay`` and
        learning rate ``lr`` (default ``hparams.lr``)."""
        hp = self.hparams  # type: ignore[attr-defined]
        lr = hp.lr if lr is None else lr
        return AdamW(params, lr=lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.adamw(self.tokenizer.parameters())  # type: ignore[attr-defined]

    def _evaluate(self, batch: dict[str, Tensor], batch_idx: int, split: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _evaluate")

    def log_evaluation(
        self,
        frames: Tensor,
        recon: Tensor,
        metrics: dict[str, Tensor],
        split: str,
        batch_idx: int,
    ) -> None:
        """Log ``metrics`` as ``<split>/<name>`` and the real|reconstruction video of
        ``frames`` and ``recon`` (``[B, T, C, H, W]``). Call it on every rank."""
        self.log_dict(  # type: ignore[attr-defined]
            {f"{split}/{k}": v for k, v in metrics.items()},
            sync_dist=True,
            batch_size=frames.shape[0],
        )
        log_reconstructions(self, frames, recon, split, batch_idx)  # type: ignore[arg-type]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")
