"""`IVideoGPTModule`: trains an :class:`~wmkit.tokenizers.ivideogpt_vq.IVideoGPTTokenizer`
from scratch or fine-tunes a converted one (iVideoGPT's ``train_tokenizer.py`` objective).

Each clip's first ``context_length`` frames are the context and the rest the future frames
(the original's ``segment_length``). The loss, as in the original:

``recon_weight·(rec(future) + rec(context)) + perceptual_weight·(LPIPS(future) +
LPIPS(context)) + VQ(context) + VQ(dynamics)``

with ``rec`` the mean L1 (or squared) error measured in iVideoGPT's [0, 1] pixel units (half
the error in wmkit's [-1, 1] scale, so the weights mean what they mean there), LPIPS on
[-1, 1] frames (``wmkit.core.lpips``; skipped with one warning when its weights are missing),
and each VQ term ``mean((sg[z] - e)²) + beta·mean((z - sg[e])²)`` (``beta`` is the
tokenizer's, 1 in the original).

Left out (differs from the original recipe): the adversarial loss with its adaptive weight
and hinge discriminator (the released 64×64 pre-training run starts it after its last step,
``--disc_start 1000005``), the ``balanced_loss`` and weighted-loss options, and the
learning-rate schedule (plain AdamW here; the original's ``max_grad_norm`` is
``--trainer.gradient_clip_val``).
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor

from wmkit.tokenizers.ivideogpt_vq import IVideoGPTTokenizer
from wmkit.tokenizers.lit_mixin import TokenizerLitMixin
from wmkit.tokenizers.losses import perceptual_distance
from wmkit.tokenizers.metrics import psnr, ssim

__all__ = ["IVideoGPTModule"]


class IVideoGPTModule(TokenizerLitMixin, L.LightningModule):
    """Lightning training of iVideoGPT's compressive tokenizer.

    Args:
        tokenizer: the network (injected; YAML gives its ``class_path``/``init_args``).
        lr: AdamW learning rate.
        betas: AdamW betas.
        weight_decay: AdamW weight decay.
        recon_loss: ``"l1"`` (the original's default) or ``"l2"``.
        recon_weight: weight of the pixel reconstruction terms.
        perceptual_weight: weight of the LPIPS terms (0 disables them).
        perceptual_net: LPIPS backbone, ``alex`` or ``vgg``.
        export_dir: where ``wmkit.core.export.ExportPretrained`` writes the tokenizer
            when fit ends (the stage adds the callback; ``--export_dir`` overrides this).
        log_videos_every_n_epochs: write a real|reconstruction GIF every n validation
            epochs under ``<log_dir>/reconstructions`` (0: never).
    """

    def __init__(
        self,
        tokenizer: IVideoGPTTokenizer,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        recon_loss: Literal["l1", "l2"] = "l1",
        recon_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        perceptual_net: str = "alex",
        export_dir: str | None = None,
        log_videos_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        if recon_loss not in ("l1", "l2"):
            raise ValueError(f"recon_loss must be 'l1' or 'l2'; got {recon_loss!r}")
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    def _context_frames(self, frames: Tensor) -> int:
        n = self.tokenizer.context_length
        if frames.shape[1] <= n:
            raise ValueError(
                f"training clips need more than context_length = {n} frames (context + "
                f"future); got frames of shape {tuple(frames.shape)}"
            )
        return n

    def _reconstruction(self, recon: Tensor, target: Tensor) -> Tensor:
        error = (recon - target) / 2  # in [0, 1] pixel units
        return error.abs().mean() if self.hparams.recon_loss == "l1" else error.square().mean()

    def losses(self, frames: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Loss terms of one ``[-1, 1]`` clip batch (``"loss"`` is the total) and the
        unclamped reconstruction."""
        hp = self.hparams
        n = self._context_frames(frames)
        out = self.tokenizer(frames, context_frames=n)
        recon = out.reconstruction
        losses = {
            "rec_context": self._reconstruction(recon[:, :n], frames[:, :n]),
            "rec_future": self._reconstruction(recon[:, n:], frames[:, n:]),
        }
        total = hp.recon_weight * (losses["rec_context"] + losses["rec_future"])
        lpips = self.perceptual_net(frames.device)
        if lpips is not None:
            losses["perceptual_context"] = perceptual_distance(lpips, recon[:, :n], frames[:, :n])
            losses["perceptual_future"] = perceptual_distance(lpips, recon[:, n:], frames[:, n:])
            perceptual = losses["perceptual_context"] + losses["perceptual_future"]
            total = total + hp.perceptual_weight * perceptual
        losses.update(out.logs)
        losses["loss"] = total + out.loss
        return losses, recon

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        frames = batch["frames"]
        losses, _ = self.losses(frames)
        self.train_steps += 1
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=frames.shape[0]
        )
        self.log("train/loss_total", losses["loss"].detach(), prog_bar=True)
        return losses["loss"]

    def _evaluate(self, batch: dict[str, Tensor], batch_idx: int, split: str) -> None:
        frames = batch["frames"]
        n = self._context_frames(frames)
        recon = self.tokenizer(frames, context_frames=n).reconstruction.clamp(-1, 1)
        metrics = {
            "l1": (recon - frames).abs().mean(),
            "psnr": psnr(recon, frames),
            "context_psnr": psnr(recon[:, :n], frames[:, :n]),
            "future_psnr": psnr(recon[:, n:], frames[:, n:]),
        }
        if split == "test":
            metrics["future_ssim"] = ssim(recon[:, n:], frames[:, n:])
        self.log_evaluation(frames, recon, metrics, split, batch_idx)
