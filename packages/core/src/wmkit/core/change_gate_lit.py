"""``ChangeGateModule``: Lightning training of a :class:`GatedWorldModel`'s gate.

Each training step rolls the frozen world model out on a batch of real clips (``context``
frames observed, ``horizon`` generated with the clip's actions; no gradient), replays the
gate on the rollout as ``step`` serves it (the anchor of each frame is the frame the hard gate
served before it), and minimises :func:`~wmkit.core.change_gate.gate_loss` against the real
frames. The world model samples anew in every step, so the gate learns from its errors as
they come, not from one cached set. Validation and test log the mean per-frame PSNR (the
gated frames, the world model's own and copy-last-frame's) and the share of blocks the gate
takes from the world model. Resuming, devices and logging come from Lightning's trainer
(``wmkit gate fit -c config.yaml``).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from wmkit.core.batch import Batch
from wmkit.core.change_gate import gate_loss
from wmkit.core.gated_world_model import GatedWorldModel

__all__ = ["ChangeGateModule"]


def _frame_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-frame PSNR (dB, [0, 1] pixels, capped at 100 dB) of ``[N, C, H, W]`` frames."""
    mse = ((pred.float() - target.float()) / 2).square().flatten(1).mean(1)
    return (-10 * torch.log10(mse.clamp_min(1e-10))).mean()


class ChangeGateModule(L.LightningModule):
    """Train the gate of ``model`` on its frozen world model's rollouts.

    Args:
        model: the gated world model (injected; its world model stays frozen).
        context: real frames the rollouts start from.
        horizon: frames each rollout generates (clips need ``context + horizon`` frames).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        mse_floor: what one exact frame is worth in the loss (:func:`gate_loss`).
        block_mse_weight: weight of the blocks' mean MSE in the loss (:func:`gate_loss`).
    """

    def __init__(
        self,
        model: GatedWorldModel,
        context: int = 2,
        horizon: int = 6,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        mse_floor: float = 1e-6,
        block_mse_weight: float = 0.5,
    ) -> None:
        super().__init__()
        if context < 1 or horizon < 1:
            raise ValueError(f"context and horizon must be >= 1; got {context}, {horizon}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _rollout(self, batch: Batch | dict[str, Tensor]) -> tuple[Tensor, ...]:
        """(anchors, the world model's frames, real frames, action features), each flattened
        to ``[B * horizon, ...]``, with the anchors the hard gate serves from."""
        batch = Batch.coerce(batch, require=("frames", "actions"))
        c, h = self.hparams.context, self.hparams.horizon
        frames, actions = batch.frames, batch.actions
        if frames.shape[1] < c + h or actions.shape[1] < c + h - 1:
            raise ValueError(
                f"clips must have context + horizon = {c + h} frames and {c + h - 1} actions; "
                f"got {frames.shape[1]} frames, {actions.shape[1]} actions"
            )
        steps = actions[:, c - 1 : c + h - 1]
        gate, spec = self.model.gate, self.model.action_spec
        with torch.no_grad():
            ctx_actions = actions[:, : c - 1] if c > 1 else None
            generated = self.model.world.rollout(frames[:, :c], steps, ctx_actions).frames
            feats = spec.features(steps)  # [B, H, A]
            anchors, served = [], frames[:, c - 1]
            for t in range(h):
                anchors.append(served)
                logits = gate(served, generated[:, t], feats[:, t])
                served = gate.select(served, generated[:, t], logits)
        flat = (torch.stack(anchors, 1), generated, frames[:, c : c + h], feats)
        return tuple(x.flatten(0, 1) for x in flat)

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        anchor, generated, target, feats = self._rollout(batch)
        logits = self.model.gate(anchor, generated, feats)
        loss = gate_loss(self.model.gate, anchor, generated, target, logits,
                         self.hparams.mse_floor, self.hparams.block_mse_weight)  # fmt: skip
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: Batch | dict[str, Tensor], split: str) -> None:
        anchor, generated, target, feats = self._rollout(batch)
        gate = self.model.gate
        logits = gate(anchor, generated, feats)
        served = gate.select(anchor, generated, logits)
        copy_last = Batch.coerce(batch).frames[:, self.hparams.context - 1]
        copy_last = copy_last.repeat_interleave(self.hparams.horizon, 0)
        logs = {
            f"{split}/psnr_frame_gated": _frame_psnr(served, target),
            f"{split}/psnr_frame_model": _frame_psnr(generated, target),
            f"{split}/psnr_frame_copy_last": _frame_psnr(copy_last, target),
            f"{split}/taken": (logits > 0).all(dim=1).float().mean(),
        }
        self.log_dict(logs, batch_size=target.shape[0])

    def validation_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.gate.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
