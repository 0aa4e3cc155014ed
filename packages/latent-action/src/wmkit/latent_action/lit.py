"""`LatentActionModule`: trains a :class:`LatentActionAutoencoder` on frames only.

``wmkit latent-action fit|test -c configs/tiny.yaml``. Batches are the core dict
(``frames`` ``[B, T, C, H, W]`` in [-1, 1]); any ``actions`` in them are ignored, since
latent actions are learned from action-free video.

Logged per split: ``recon_mse`` (decoder with the inferred latents), ``copy_last_mse`` (the
baseline of repeating frame ``t``), ``psnr`` and ``psnr_shuffled`` (decoder with latents taken
from other samples of the batch: if the latent carries the action, shuffling hurts),
and for quantized models code ``perplexity`` and ``usage`` (collapse shows as perplexity → 1).
"""

from __future__ import annotations

import warnings

import lightning as L
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from wmkit.core import Batch
from wmkit.latent_action.latent_action_model import LatentActionAutoencoder
from wmkit.latent_action.quantizer import code_statistics

__all__ = ["LatentActionModule", "psnr"]


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of videos in [-1, 1] (peak-to-peak 2), averaged over frames."""
    mse = (pred - target).pow(2).flatten(2).mean(-1).clamp_min(1e-10)  # [B, T]
    return (10 * torch.log10(4.0 / mse)).mean()


class LatentActionModule(L.LightningModule):
    """Next-frame reconstruction through the latent-action bottleneck.

    Args:
        model: the network (injected; YAML gives its ``class_path`` and ``init_args``).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lpips_weight: weight of a perceptual (LPIPS) term; needs ``wmkit.core.lpips`` and its
            converted weights, else a warning is given and the term skipped.
        export_dir: where ``wmkit.core.export.ExportPretrained`` writes the network when ``fit``
            ends (the directory ``wmkit latent-action probe --model`` and ``load_pretrained``
            read); the stage adds the callback, and its ``--export_dir`` overrides this.
    """

    def __init__(
        self,
        model: LatentActionAutoencoder,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lpips_weight: float = 0.0,
        export_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self._lpips = self._load_lpips() if lpips_weight > 0 else None

    @staticmethod
    def _load_lpips() -> torch.nn.Module | None:
        try:
            from wmkit.core.lpips import LPIPS  # type: ignore[import-not-found]

            net = LPIPS(check_range=False)  # a loss: reconstructions may leave [-1, 1]
        except Exception as e:  # ImportError, MissingWeightsError: train without it
            warnings.warn(
                f"lpips_weight > 0 but LPIPS is unavailable ({type(e).__name__}: {e}); "
                "training with pixel MSE only",
                stacklevel=2,
            )
            return None
        net.requires_grad_(False)
        return net.eval()

    def _losses(
        self, batch: Batch | dict[str, Tensor], shuffled: bool = False
    ) -> dict[str, Tensor]:
        frames = Batch.coerce(batch, require=("frames",)).frames
        out = self.model(frames)
        target, current = frames[:, 1:], frames[:, :-1]
        recon = F.mse_loss(out.predicted, target)
        logs = {
            "recon_mse": recon,
            "copy_last_mse": F.mse_loss(current, target),
            "psnr": psnr(out.predicted.detach(), target),
        }
        loss = recon + out.aux_loss
        if self._lpips is not None:
            flat = rearrange(out.predicted, "b t c h w -> (b t) c h w")
            perceptual = self._lpips(flat, rearrange(target, "b t c h w -> (b t) c h w")).mean()
            loss = loss + self.hparams.lpips_weight * perceptual
            logs["lpips"] = perceptual
        if self.model.latent_action_spec.is_discrete:
            ids = out.latent_actions.reshape(-1, out.latent_actions.shape[-1])
            logs.update(code_statistics(ids, self.model.bottleneck.codebook_size))
        if shuffled:
            with torch.no_grad():
                n = current.shape[0] * current.shape[1]
                feats = rearrange(out.features, "b t k d -> (b t) k d")
                perm = torch.roll(torch.arange(n, device=feats.device), 1)
                flat = rearrange(current, "b t c h w -> (b t) c h w")
                pred = self.model.decode(flat, feats[perm])
                pred = rearrange(pred, "(b t) c h w -> b t c h w", b=frames.shape[0])
                logs["psnr_shuffled"] = psnr(pred, target)
        logs["loss"] = loss
        return logs

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self._losses(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        return losses["loss"]

    def validation_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self._losses(batch, shuffled=True).items()})

    def test_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"test/{k}": v for k, v in self._losses(batch, shuffled=True).items()})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
