"""``DiffusionForcingModule``: Lightning training of a :class:`DiffusionWorldModel`.

The network is injected (YAML picks it by class path). Training minimises the Diffusion
Forcing loss (:meth:`DiffusionWorldModel.loss`); validation and test also roll the model
out from the first half of each clip and log PSNR of the generated frames against the
copy-last-frame baseline, the bar every wmkit world model must clear (DESIGN.md §7).
When the model has a reward head and a batch has ``rewards``, the loss adds
``reward_weight`` times the reward MSE (:meth:`DiffusionWorldModel.reward_loss`); with a done
head and ``dones``, ``done_weight`` times the done BCE (:meth:`DiffusionWorldModel.done_loss`).
Those read real next frames; ``generated_head_weight`` adds the same losses on one transition
per clip whose next frame the model samples itself, which is what the heads read in ``step``
(:meth:`DiffusionWorldModel.generated_head_losses`).
bf16, gradient checkpointing, DDP/FSDP and resuming come from Lightning's trainer flags
(``--trainer.precision bf16-mixed``, ``--trainer.strategy fsdp``, ``--ckpt_path last``).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from wmkit.core import Batch
from wmkit.diffusion_world.world_model import DiffusionWorldModel

__all__ = ["DiffusionForcingModule", "psnr"]


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB per sample for videos in [-1, 1] (peak-to-peak 2), averaged over frames."""
    mse = (pred.float() - target.float()).pow(2).flatten(2).mean(-1)  # [B, T]
    return (10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean(1)


class DiffusionForcingModule(L.LightningModule):
    """Diffusion Forcing training of a causal video diffusion world model.

    Args:
        model: the world model (injected).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up.
        gradient_checkpointing: recompute network blocks in the backward pass.
        eval_context: context frames for the evaluation rollouts (the rest are generated;
            with latent steps of ``k`` frames ``reset`` keeps the last ``1 + n·k`` of them).
        reward_weight: weight of the reward head's MSE in the loss (models with a reward
            head, batches with ``rewards``).
        done_weight: weight of the done head's binary cross-entropy (models with a done
            head, batches with ``dones``).
        generated_head_weight: weight of the heads' losses on generated next frames, relative
            to those on real ones (each still times ``reward_weight`` / ``done_weight``);
            costs one sampling of a frame per training step. 0: real frames only.
    """

    def __init__(
        self,
        model: DiffusionWorldModel,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        gradient_checkpointing: bool = False,
        eval_context: int = 2,
        reward_weight: float = 1.0,
        done_weight: float = 1.0,
        generated_head_weight: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("reward_weight", reward_weight),
            ("done_weight", done_weight),
            ("generated_head_weight", generated_head_weight),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0; got {value}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        if gradient_checkpointing:
            model.set_gradient_checkpointing(True)

    def _head_losses(self, batch: Batch, latents: Tensor) -> dict[str, Tensor]:
        """``reward_mse`` / ``done_bce`` of the heads the model has, for the targets the batch
        has (``latents``: the batch's frames encoded)."""
        out = {}
        for head, key, name, loss_fn in (
            (self.model.reward_head, "rewards", "reward_mse", self.model.reward_loss),
            (self.model.done_head, "dones", "done_bce", self.model.done_loss),
        ):
            target = getattr(batch, key)
            if head is None or target is None:
                continue
            if batch.actions is None:
                head_name = name.split("_")[0]
                raise ValueError(f"the {head_name} head needs batch actions beside batch {key}")
            out[name] = loss_fn(batch.frames, batch.actions, target, latents)
        return out

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        batch = Batch.coerce(batch, require=("frames",))
        latents = self.model.encode(batch.frames)  # once for the loss and the heads
        out = self.model.loss(batch.frames, batch.actions, latents)
        loss = out.loss
        logs = {f"train/{k}": v for k, v in out.logs.items()}
        heads = self._head_losses(batch, latents)
        if heads:
            logs["train/diffusion_loss"] = out.loss
        weights = {"reward_mse": self.hparams.reward_weight, "done_bce": self.hparams.done_weight}
        for name, value in heads.items():
            logs[f"train/{name}"] = value
            loss = loss + weights[name] * value
        gen_weight = self.hparams.generated_head_weight
        if heads and gen_weight > 0:
            for name, value in self._generated_head_losses(batch, latents).items():
                logs[f"train/{name}_generated"] = value
                loss = loss + gen_weight * weights[name] * value
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(logs)
        return loss

    def _generated_head_losses(self, batch: Batch, latents: Tensor) -> dict[str, Tensor]:
        """:meth:`DiffusionWorldModel.generated_head_losses` on its own random stream (seeded by
        the run's seed, the step and the rank), so turning it on leaves the diffusion network's
        noise draws, and so its training, exactly as they were."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = torch.initial_seed() + 1_000_003 * (self.global_step + 1) + self.global_rank
            torch.manual_seed(seed % 2**63)
            return self.model.generated_head_losses(
                batch.frames, batch.actions, batch.rewards, batch.dones, latents
            )

    def _evaluate(self, batch: Batch | dict[str, Tensor], split: str) -> None:
        batch = Batch.coerce(batch, require=("frames",))
        frames, actions = batch.frames, batch.actions
        latents = self.model.encode(frames)
        out = self.model.loss(frames, actions, latents)
        logs = {f"{split}/loss": out.loss}
        logs.update({f"{split}/{k}": v for k, v in self._head_losses(batch, latents).items()})
        k = self.hparams.eval_context
        if actions is not None and frames.shape[1] > k:
            gen = self.model.rollout(frames[:, :k], actions[:, k - 1 : -1]).frames
            target = frames[:, k:]
            logs[f"{split}/psnr"] = psnr(gen, target).mean()
            copy = frames[:, k - 1 : k].expand_as(target)
            logs[f"{split}/psnr_copy_last"] = psnr(copy, target).mean()
        self.log_dict(logs, batch_size=frames.shape[0])

    def validation_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimiser updates (subclasses training part of the model narrow it)."""
        return list(self.model.parameters())

    def configure_optimizers(self) -> dict | torch.optim.Optimizer:
        opt = torch.optim.AdamW(
            self.trainable_parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        warm = self.hparams.warmup_steps
        if warm <= 0:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
