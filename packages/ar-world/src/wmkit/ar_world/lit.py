"""`ARWorldModelModule`: trains an injected :class:`ARWorldModel` with next-token
cross-entropy on frame tokens plus reward (MSE) and done (BCE) losses at the slots.

Batches are core's :class:`~wmkit.core.Batch` (or the dicts it is made from): ``frames``
``[B, T, C, H, W]`` (encoded on the fly by the frozen tokenizer) or ``tokens`` ``[B, T, h, w]``
(from a :mod:`~wmkit.ar_world.token_cache`), with ``actions`` ``[B, T, ...]``, ``rewards`` and
optionally ``dones`` ``[B, T]``. Precision, DDP/FSDP, checkpointing and resuming are
Lightning's (``--trainer.precision bf16-mixed``, ``--trainer.strategy fsdp``); gradient
checkpointing is the transformer's ``gradient_checkpointing`` argument.

With a tokenizer of temporal compression ``k > 1`` a clip has ``T = 1 + n·k`` frames (or
``1 + n`` latents of ids from a token cache) and its actions, rewards and dones are grouped by
latent step (:func:`~wmkit.ar_world.latent_steps.latent_clip`: each latent's chunk of ``k``
actions conditions the next latent; the last latent's chunk, past the clip, is the null
action and its rewards are no targets).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from wmkit.ar_world.latent_steps import latent_clip
from wmkit.ar_world.world_model import ARWorldModel
from wmkit.core import Batch, num_latent_steps

__all__ = ["ARWorldModelModule"]


class ARWorldModelModule(L.LightningModule):
    """Teacher-forced training of an autoregressive world model.

    Args:
        model: the network (injected; YAML gives its ``class_path`` and ``init_args``).
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        lr_decay: ``"none"`` keeps the peak rate after warm-up; ``"cosine"`` decays it to
            ``min_lr_ratio·lr`` over the trainer's total steps (``max_steps``, or the epochs'
            batches), which short budgets gain most from.
        min_lr_ratio: the cosine schedule's final rate as a fraction of ``lr``.
        reward_weight: weight of the reward MSE.
        done_weight: weight of the done BCE.
        action_dropout: probability of replacing a step's action by the null action, so the
            model also runs from frames alone (``reset`` without context actions).
        goal_prob: probability of a batch being goal-conditioned: the clip's last frame is
            placed first, followed by a null action (iVideoGPT's rearrangement); per-frame
            tokenizers only (not with temporal compression ``k > 1`` either).
        token_noise: in training, replace each *input* frame token by a random id with this
            probability (the targets stay clean): the model learns to predict from imperfect
            frames, as it must in a rollout of its own predictions (noise augmentation against
            exposure bias, as GameNGen noises its context frames). Modest on the quickstart
            (``packages/ar-world/README.md``).
    """

    def __init__(
        self,
        model: ARWorldModel,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        lr_decay: Literal["none", "cosine"] = "none",
        min_lr_ratio: float = 0.0,
        reward_weight: float = 1.0,
        done_weight: float = 0.1,
        action_dropout: float = 0.1,
        goal_prob: float = 0.0,
        token_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if lr_decay not in ("none", "cosine"):
            raise ValueError(f"lr_decay must be 'none' or 'cosine'; got {lr_decay!r}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1]; got {min_lr_ratio}")
        if not 0.0 <= token_noise < 1.0:
            raise ValueError(f"token_noise must be in [0, 1); got {token_noise}")
        if goal_prob > 0 and model.frames_per_step > 1:
            raise ValueError(
                "goal_prob > 0 needs a per-frame tokenizer; the model's tokenizer has "
                f"temporal_compression {model.frames_per_step}"
            )
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _tokens(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        if batch.tokens is not None:
            future = batch.future_tokens
            return batch.tokens.long(), None if future is None else future.long()
        if self.model.frames_per_step > 1:  # a clear error before the tokenizer's
            num_latent_steps(batch.frames.shape[1], self.model.frames_per_step, "clip")
        return self.model.encode_clip(batch.frames)

    def losses(self, batch: Batch | dict[str, Tensor], train: bool = False) -> dict[str, Tensor]:
        """Loss terms and metrics for one batch (``train`` enables action dropout and goals)."""
        batch = Batch.coerce(batch, require=("actions", "rewards"))
        (tokens, future), actions = self._tokens(batch), batch.actions
        rewards = batch.rewards.float()
        dones = torch.zeros_like(rewards) if batch.dones is None else batch.dones.float()
        # False on the padded step of a clip that ends on an episode's final observation
        # (ClipDataset): that frame is a target, but it has no reward or done of its own
        mask = batch.step_mask
        mask = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.bool()
        b = tokens.shape[0]
        t = tokens.shape[1] + (0 if future is None else future.shape[1])
        hp = self.hparams
        null = None
        if self.model.frames_per_step > 1:  # t latents; rewards [B, t, k]
            steps = latent_clip(
                self.model.action_encoder, t, self.model.frames_per_step, actions, rewards,
                dones, mask,
            )  # fmt: skip
            actions, null = steps.actions, steps.null
            rewards, dones, mask = steps.rewards, steps.dones, steps.mask
        else:
            actions = actions[:, :t]
            rewards, dones, mask = rewards[:, :t], dones[:, :t], mask[:, :t]
        if train and hp.action_dropout > 0:
            drop = torch.rand(b, t, device=tokens.device) < hp.action_dropout
            null = drop if null is None else null | drop
        frame_from = 0
        goal = train and hp.goal_prob > 0 and t < self.model.max_frames and future is None
        if goal and torch.rand(()) < hp.goal_prob:
            tokens = torch.cat([tokens[:, -1:], tokens], dim=1)
            actions = torch.cat([actions[:, :1], actions], dim=1)
            goal_null = torch.ones(b, 1, dtype=torch.bool, device=tokens.device)
            base = torch.zeros(b, t, dtype=torch.bool, device=tokens.device)
            null = torch.cat([goal_null, base if null is None else null], dim=1)
            rewards = torch.cat([rewards[:, :1], rewards], dim=1)
            dones = torch.cat([dones[:, :1], dones], dim=1)
            mask = torch.cat([mask[:, :1], mask], dim=1)
            frame_from = 1  # no reward/done target for the goal step
        inputs, future_in = tokens, future
        if train and hp.token_noise > 0:
            inputs = _corrupt(tokens, hp.token_noise, self.model.layout.context_vocab_size)
            if future is not None:
                future_in = _corrupt(future, hp.token_noise, self.model.layout.vocab_size)
        out = self.model(inputs, actions, null, future_in)
        logits = out.frame_logits  # [B, T - 1, n, V] (compressive: [B, T - T0, n, V_f])
        target = (tokens[:, 1:] if future is None else future).flatten(2)
        ce = F.cross_entropy(logits.flatten(0, 2).float(), target.flatten())
        keep = mask[:, frame_from:]
        reward = F.mse_loss(out.reward[:, frame_from:][keep].float(), rewards[:, frame_from:][keep])
        done = F.binary_cross_entropy_with_logits(
            out.done_logits[:, frame_from:][keep].float(), dones[:, frame_from:][keep]
        )
        acc = (logits.argmax(-1) == target).float().mean()
        return {
            "loss": ce + hp.reward_weight * reward + hp.done_weight * done,
            "token_ce": ce,
            "token_acc": acc,
            "reward_mse": reward,
            "done_bce": done,
        }

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.losses(batch, train=True)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        return losses["loss"]

    def validation_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.losses(batch).items()})

    def test_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"test/{k}": v for k, v in self.losses(batch).items()})

    def configure_optimizers(self):
        hp = self.hparams
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        other = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": hp.weight_decay},
                {"params": other, "weight_decay": 0},
            ],
            lr=hp.lr,
            betas=(0.9, 0.95),
        )
        if hp.warmup_steps <= 0 and hp.lr_decay == "none":
            return opt
        total = None
        if hp.lr_decay == "cosine":
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ValueError(
                    "lr_decay='cosine' needs a finite run: set trainer.max_steps or max_epochs"
                )
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(lr_factor, warmup=hp.warmup_steps, total=total, floor=hp.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(step: int, warmup: int, total: int | float | None, floor: float = 0.0) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup`` steps, then
    constant (``total`` None) or a cosine from 1 down to ``floor`` at step ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if total is None:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _corrupt(ids: Tensor, p: float, vocab: int) -> Tensor:
    """``ids`` with each replaced by a uniformly random id with probability ``p``."""
    flip = torch.rand(ids.shape, device=ids.device) < p
    return torch.where(flip, torch.randint_like(ids, vocab), ids)
