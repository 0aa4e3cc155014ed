"""`CompressiveModule`: trains a :class:`~wmkit.tokenizers.compressive.CompressiveTokenizer`.

Loss (VQGAN objective as in iVideoGPT): ``l1_weight·|x - x̂| + perceptual_weight·LPIPS``
(``mse_weight·(x - x̂)²`` beside or instead of L1: a residual tokenizer needs it, because L1's
constant-size gradients on the many unchanged pixels hold its change output at zero; measured
on moving squares, L1 stays at copy-last while MSE learns the motion)
(``wmkit.core.lpips``; skipped with one warning when its weights are missing) ``+`` the
quantizers' commitment / entropy terms. Each batch draws its context length uniformly from
``[min_context_frames, min(max_context_frames, T - 1)]`` so one tokenizer serves every
context length; with probability ``goal_prob`` the context is ``(o_{T-1}, o_0, …)``
(iVideoGPT's goal-conditioning order: the last frame joins the context). Future frames can be
up-weighted (``future_weight``) since they are what the compressive path learns.

Not implemented here (differs from iVideoGPT's full recipe): the adversarial loss.
"""

from __future__ import annotations

import random

import lightning as L
import torch
from torch import Tensor

from wmkit.core import Batch
from wmkit.tokenizers.compressive import CompressiveTokenizer
from wmkit.tokenizers.lit_mixin import TokenizerLitMixin
from wmkit.tokenizers.losses import perceptual_distance
from wmkit.tokenizers.metrics import psnr, ssim

__all__ = ["CompressiveModule"]


class CompressiveModule(TokenizerLitMixin, L.LightningModule):
    """Lightning training of a compressive tokenizer.

    Args:
        tokenizer: the network (injected; YAML gives its ``class_path``/``init_args``).
        lr: AdamW learning rate.
        betas: AdamW betas.
        weight_decay: AdamW weight decay.
        l1_weight: weight of the pixel L1 loss.
        mse_weight: weight of the pixel MSE loss (use it for ``future_residual`` tokenizers).
        future_weight: extra factor on the future frames' L1 (and LPIPS).
        perceptual_weight: weight of LPIPS (0 disables it).
        perceptual_net: LPIPS backbone, ``alex`` or ``vgg``.
        min_context_frames: smallest context drawn per training batch.
        max_context_frames: largest (``None``: ``T - 1``).
        goal_prob: probability of a goal-conditioned context ``(T-1, 0, 1, ...)``.
        eval_context_frames: context length of validation and test (``None``: ``T // 2``).
        export_dir: where ``wmkit.core.export.ExportPretrained`` writes the tokenizer
            when fit ends (the stage adds the callback; ``--export_dir`` overrides this).
        log_videos_every_n_epochs: write a real|reconstruction GIF every n validation
            epochs under ``<log_dir>/reconstructions`` (0: never).
    """

    def __init__(
        self,
        tokenizer: CompressiveTokenizer,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        l1_weight: float = 1.0,
        mse_weight: float = 0.0,
        future_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        perceptual_net: str = "alex",
        min_context_frames: int = 1,
        max_context_frames: int | None = None,
        goal_prob: float = 0.0,
        eval_context_frames: int | None = None,
        export_dir: str | None = None,
        log_videos_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        if min_context_frames < 1:
            raise ValueError(f"min_context_frames must be >= 1; got {min_context_frames}")
        if max_context_frames is not None and max_context_frames < min_context_frames:
            raise ValueError(
                f"max_context_frames ({max_context_frames}) must be >= min_context_frames "
                f"({min_context_frames})"
            )
        if not 0.0 <= goal_prob <= 1.0:
            raise ValueError(f"goal_prob must be in [0, 1]; got {goal_prob}")
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))
        self._rng = random.Random(0)

    def sample_context(self, num_frames: int) -> tuple[int, ...]:
        """Context indices for one training batch of ``num_frames`` frames."""
        if num_frames < 2:
            raise ValueError(
                f"training clips need >= 2 frames (context + future); got {num_frames}"
            )
        hp = self.hparams
        hi = min(hp.max_context_frames or num_frames - 1, num_frames - 1)
        lo = min(hp.min_context_frames, hi)
        t0 = self._rng.randint(lo, hi)
        if self._rng.random() < hp.goal_prob:
            return (num_frames - 1, *range(t0 - 1))
        return tuple(range(t0))

    def _losses(self, frames: Tensor, context: tuple[int, ...]) -> tuple[dict[str, Tensor], dict]:
        hp = self.hparams
        out = self.tokenizer(frames, context_indices=context)
        recon = out.reconstruction
        weights = torch.full((frames.shape[1],), float(hp.future_weight), device=frames.device)
        weights[list(context)] = 1.0
        error = recon - frames
        per_frame = error.abs().mean(dim=(0, 2, 3, 4))  # [T]
        losses = {"l1": (per_frame * weights).sum() / weights.sum()}
        total = hp.l1_weight * losses["l1"]
        if hp.get("mse_weight", 0.0) > 0:
            per_frame_mse = error.square().mean(dim=(0, 2, 3, 4))
            losses["mse"] = (per_frame_mse * weights).sum() / weights.sum()
            total = total + hp.mse_weight * losses["mse"]
        lpips = self.perceptual_net(frames.device)
        if lpips is not None:
            losses["perceptual"] = perceptual_distance(lpips, recon, frames)
            total = total + hp.perceptual_weight * losses["perceptual"]
        losses["quantizer"] = out.loss
        losses["loss"] = total + out.loss
        return losses, {"out": out}

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        frames = Batch.coerce(batch, require=("frames",)).frames
        context = self.sample_context(frames.shape[1])
        losses, extra = self._losses(frames, context)
        self.train_steps += 1
        logs = {f"train/{k}": v.detach() for k, v in {**losses, **extra["out"].logs}.items()}
        logs["train/context_frames"] = torch.tensor(float(len(context)))
        self.log_dict(logs, batch_size=frames.shape[0])
        self.log("train/loss_total", losses["loss"].detach(), prog_bar=True)
        return losses["loss"]

    def _evaluate(self, batch: Batch | dict[str, Tensor], batch_idx: int, split: str) -> None:
        frames = Batch.coerce(batch, require=("frames",)).frames
        t = frames.shape[1]
        t0 = self.hparams.eval_context_frames or max(1, t // 2)
        t0 = min(t0, t - 1) if t > 1 else 1
        out = self.tokenizer(frames, context_frames=t0)
        recon = out.reconstruction.clamp(-1, 1)
        metrics = {"l1": (recon - frames).abs().mean(), "psnr": psnr(recon, frames)}
        if t0 < t:
            metrics["future_psnr"] = psnr(recon[:, t0:], frames[:, t0:])
            metrics["future_l1"] = (recon[:, t0:] - frames[:, t0:]).abs().mean()
            if split == "test":
                metrics["future_ssim"] = ssim(recon[:, t0:], frames[:, t0:])
        metrics["context_psnr"] = psnr(recon[:, :t0], frames[:, :t0])
        self.log_evaluation(frames, recon, metrics, split, batch_idx)
