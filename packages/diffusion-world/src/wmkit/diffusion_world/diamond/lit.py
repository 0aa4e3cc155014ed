"""``DiamondModule``: Lightning training of a :class:`DiamondWorldModel`'s next-frame denoiser
(DIAMOND's world-model training, Alonso et al. 2024, arXiv:2405.12399, App. B), so
``wmkit diffusion-world fit -c configs/diamond-tiny.yaml`` trains one from scratch.

Each batch holds clips ``frames [B, T, C, H, W]`` and ``actions [B, T]`` (action ``t`` taken
at frame ``t``); the loss is :meth:`DiamondWorldModel.loss` on the first ``n + K`` frames
(``K = autoregressive_steps``: Atari 1, CS:GO 4). Validation and test roll the model out
from the first ``eval_context`` frames and their actions and log the PSNR of the generated
frames next to that of copying the last context frame (DESIGN.md §7).

Where we differ: DIAMOND samples clips with a per-episode weighting and trains the
reward/end model and the agent in the same loop; here the data module decides the clips and
only the denoiser trains (the upsampler, which needs paired low/full-resolution data, and the
reward/end model train elsewhere).
"""

from __future__ import annotations

import lightning as L
from torch import Tensor

from wmkit.diffusion_world.diamond.world_model import DiamondWorldModel
from wmkit.diffusion_world.lit import DiffusionForcingModule, psnr

__all__ = ["DiamondModule"]


class DiamondModule(DiffusionForcingModule):
    """Trains a :class:`DiamondWorldModel` (the optimiser and its warm-up are
    :class:`~wmkit.diffusion_world.lit.DiffusionForcingModule`'s: AdamW, linear warm-up).

    Args:
        model: the world model (injected).
        lr: AdamW learning rate (DIAMOND: 1e-4).
        weight_decay: AdamW weight decay (DIAMOND: 1e-2).
        warmup_steps: linear learning-rate warm-up (DIAMOND: 100).
        autoregressive_steps: frames ``K`` denoised in turn per clip, each conditioned on
            the previous estimates; ``None``: every frame after the first ``n``.
        eval_context: context frames of the evaluation rollouts.
    """

    def __init__(
        self,
        model: DiamondWorldModel,
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        warmup_steps: int = 100,
        autoregressive_steps: int | None = 1,
        eval_context: int = 4,
    ) -> None:
        L.LightningModule.__init__(self)
        if autoregressive_steps is not None and autoregressive_steps < 1:
            raise ValueError(f"autoregressive_steps must be >= 1; got {autoregressive_steps}")
        if eval_context < 1:
            raise ValueError(f"eval_context must be >= 1; got {eval_context}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _clip(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        frames, actions = batch["frames"], batch.get("actions")
        if actions is None:
            raise ValueError("DIAMOND trains on actions: the batch has no 'actions'")
        n, k = self.model.num_steps_conditioning, self.hparams.autoregressive_steps
        length = frames.shape[1] if k is None else n + k
        if frames.shape[1] < length or length <= n:
            raise ValueError(
                f"clips need at least n + K = {n} + {k or 1} frames; got {frames.shape[1]}"
            )
        return frames[:, :length], actions[:, :length]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.model.loss(*self._clip(batch))
        self.log("train/loss", out.loss, prog_bar=True)
        return out.loss

    def _evaluate(self, batch: dict[str, Tensor], split: str) -> None:
        frames, actions = self._clip(batch)
        logs = {f"{split}/loss": self.model.loss(frames, actions).loss}
        frames, actions = batch["frames"], batch["actions"]
        k = self.hparams.eval_context
        if frames.shape[1] > k:
            gen = self.model.rollout(frames[:, :k], actions[:, k - 1 : -1], actions[:, : k - 1])
            target = frames[:, k:]
            logs[f"{split}/psnr"] = psnr(gen.frames, target).mean()
            copy = frames[:, k - 1 : k].expand_as(target)
            logs[f"{split}/psnr_copy_last"] = psnr(copy, target).mean()
        self.log_dict(logs, batch_size=frames.shape[0])
