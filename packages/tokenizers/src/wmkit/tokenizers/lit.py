"""`VidTokModule`: trains a :class:`~wmkit.tokenizers.vidtok.VidTokTokenizer` (``wmkit tokenizer``).

Loss (VidTok §3.3): ``l1_weight·|x - x̂| + perceptual_weight·LPIPS(x, x̂) + kl_weight·KL``
(KL models) or ``+ FSQ entropy term`` (FSQ models), plus, from ``adversarial_start_step``
on, ``adversarial_weight·hinge-GAN`` against a 3D patch discriminator trained alongside.
``mse_weight·(x - x̂)²`` (off by default; not in VidTok) aims a tokenizer at PSNR.
The perceptual term uses ``wmkit.core.lpips.LPIPS``; when it or its weights are missing a
warning is given once and the term is skipped.

VidTok's two-stage recipe is two configs: stage 1 trains everything at low resolution;
stage 2 loads that tokenizer (``init_from``), freezes the encoder (``freeze_encoder``) and
fine-tunes the decoder at a higher resolution. ``ema_decay`` keeps an exponential moving
average of the weights (used for validation, test and export). Batches are dicts with
``frames`` ``[B, T, C, H, W]``; clips are cut to the longest ``1 + k·t`` prefix.

Where we differ from VidTok: the adversarial weight is fixed (no adaptive weight from
last-layer gradient norms), which is simpler and stable at our scales. With a discriminator
under DDP use ``--trainer.strategy ddp_find_unused_parameters_true`` (the two players'
parameters are idle in each other's steps).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from safetensors.torch import load_model
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from wmkit.core import Batch
from wmkit.tokenizers.discriminator import PatchDiscriminator3D
from wmkit.tokenizers.lit_mixin import TokenizerLitMixin
from wmkit.tokenizers.losses import (
    discriminator_hinge_loss,
    generator_hinge_loss,
    perceptual_distance,
)
from wmkit.tokenizers.metrics import psnr, ssim
from wmkit.tokenizers.vidtok import TokenizerOutput, VidTokTokenizer

__all__ = ["VidTokModule"]


class VidTokModule(TokenizerLitMixin, L.LightningModule):
    """Lightning training of a VidTok tokenizer.

    Args:
        tokenizer: the network (injected; YAML gives its ``class_path``/``init_args``).
        lr: AdamW learning rate of the tokenizer.
        betas: AdamW betas (both players).
        weight_decay: AdamW weight decay.
        l1_weight: weight of the pixel L1 loss.
        mse_weight: weight of the pixel MSE loss (0 by default, as in VidTok; PSNR is a
            function of the MSE, so tokenizers scored by PSNR train better with it).
        perceptual_weight: weight of LPIPS (0 disables it).
        perceptual_net: LPIPS backbone, ``alex`` or ``vgg``.
        kl_weight: weight of the KL term (KL tokenizers).
        discriminator: optional 3D patch discriminator (enables the adversarial loss).
        adversarial_weight: weight of the generator's hinge loss.
        adversarial_start_step: training step at which the adversarial game starts.
        discriminator_lr: learning rate of the discriminator (default ``lr``).
        ema_decay: EMA decay of the tokenizer weights (``None``: no EMA).
        freeze_encoder: train the decoder only (VidTok stage 2).
        init_from: a ``save_pretrained`` directory whose weights initialise the tokenizer.
        export_dir: where ``wmkit.core.export.ExportPretrained`` writes the (EMA) tokenizer
            when fit ends (the stage adds the callback; ``--export_dir`` overrides this).
        log_videos_every_n_epochs: write a real|reconstruction GIF every n validation epochs
            (0: never) under ``<log_dir>/reconstructions``; also sent to a logger that has
            ``add_video`` (TensorBoard).
    """

    def __init__(
        self,
        tokenizer: VidTokTokenizer,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        l1_weight: float = 1.0,
        mse_weight: float = 0.0,
        perceptual_weight: float = 1.0,
        perceptual_net: str = "alex",
        kl_weight: float = 1e-6,
        discriminator: PatchDiscriminator3D | None = None,
        adversarial_weight: float = 0.1,
        adversarial_start_step: int = 0,
        discriminator_lr: float | None = None,
        ema_decay: float | None = None,
        freeze_encoder: bool = False,
        init_from: str | None = None,
        export_dir: str | None = None,
        log_videos_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer", "discriminator"])
        self.automatic_optimization = False
        self.tokenizer = tokenizer
        self.discriminator = discriminator
        if init_from is not None:
            _load_weights(tokenizer, init_from)
        if freeze_encoder:
            self.tokenizer.encoder.requires_grad_(False)
        self.ema: AveragedModel | None = None
        if ema_decay is not None:
            if not 0.0 < ema_decay < 1.0:
                raise ValueError(f"ema_decay must be in (0, 1); got {ema_decay}")
            self.ema = AveragedModel(
                tokenizer, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
            )
            self.ema.requires_grad_(False)
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ helpers
    @property
    def eval_tokenizer(self) -> VidTokTokenizer:
        """The EMA tokenizer when EMA is on, else the trained one."""
        return self.ema.module if self.ema is not None else self.tokenizer  # type: ignore[return-value]

    def _clip(self, batch: Batch | dict[str, Tensor]) -> Tensor:
        frames = Batch.coerce(batch, require=("frames",)).frames
        t = self.tokenizer.temporal_compression
        n = 1 + (frames.shape[1] - 1) // t * t
        return frames[:, :n]

    def _generator_losses(
        self, frames: Tensor, out: TokenizerOutput, adversarial: bool
    ) -> dict[str, Tensor]:
        hp = self.hparams
        recon = out.reconstruction
        losses = {"l1": (recon - frames).abs().mean()}
        total = hp.l1_weight * losses["l1"]
        if hp.mse_weight > 0:
            losses["mse"] = F.mse_loss(recon, frames)
            total = total + hp.mse_weight * losses["mse"]
        lpips = self.perceptual_net(frames.device)
        if lpips is not None:
            losses["perceptual"] = perceptual_distance(lpips, recon, frames)
            total = total + hp.perceptual_weight * losses["perceptual"]
        if self.tokenizer.kind == "continuous":
            losses["kl"] = out.reg_loss
            total = total + hp.kl_weight * out.reg_loss
        else:
            losses["fsq_entropy"] = out.reg_loss
            total = total + out.reg_loss
        if adversarial and self.discriminator is not None:
            losses["g_adv"] = generator_hinge_loss(self.discriminator(recon))
            total = total + hp.adversarial_weight * losses["g_adv"]
        losses["loss"] = total
        return losses

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list) else (opts, None)
        frames = self._clip(batch)
        adversarial = opt_d is not None and int(self.train_steps) >= (
            self.hparams.adversarial_start_step
        )
        out = self.tokenizer(frames)
        losses = self._generator_losses(frames, out, adversarial)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(losses["loss"])
        opt_g.step()
        if adversarial and opt_d is not None and self.discriminator is not None:
            real = self.discriminator(frames)
            fake = self.discriminator(out.reconstruction.detach())
            losses["d_hinge"] = discriminator_hinge_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(losses["d_hinge"])
            opt_d.step()
        if self.ema is not None:
            self.ema.update_parameters(self.tokenizer)
        self.train_steps += 1
        logs = {f"train/{k}": v.detach() for k, v in {**losses, **out.logs}.items()}
        self.log_dict(logs, prog_bar=False, batch_size=frames.shape[0])
        self.log(
            "train/loss_total", losses["loss"].detach(), prog_bar=True, batch_size=frames.shape[0]
        )
        return losses["loss"]

    def _evaluate(
        self, batch: Batch | dict[str, Tensor], batch_idx: int, split: str
    ) -> dict[str, Tensor]:
        frames = self._clip(batch)
        tok = self.eval_tokenizer
        out = tok(frames, sample_posterior=False)
        recon = out.reconstruction.clamp(-1, 1)
        metrics = {
            "l1": (recon - frames).abs().mean(),
            "mse": F.mse_loss(recon, frames),
            "psnr": psnr(recon, frames),
        }
        if split == "test":
            metrics["ssim"] = ssim(recon, frames)
        lpips = self.perceptual_net(frames.device)
        if lpips is not None:
            metrics["lpips"] = perceptual_distance(lpips, recon, frames)
        self.log_evaluation(frames, recon, metrics, split, batch_idx)
        return metrics

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        opts = [self.adamw(p for p in self.tokenizer.parameters() if p.requires_grad)]
        if self.discriminator is not None:
            opts.append(self.adamw(self.discriminator.parameters(), hp.discriminator_lr or hp.lr))
        return opts


def _load_weights(tokenizer: nn.Module, directory: str) -> None:
    """Load ``model.safetensors`` of a ``save_pretrained`` directory into ``tokenizer``."""
    path = Path(directory) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"init_from: no model.safetensors in {directory} (expected a save_pretrained directory)"
        )
    try:
        load_model(tokenizer, str(path), strict=True)
    except RuntimeError as e:
        raise ValueError(f"init_from: {path} does not match the configured tokenizer: {e}") from e
