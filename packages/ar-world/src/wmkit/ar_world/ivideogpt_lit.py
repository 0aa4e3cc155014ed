"""`IVideoGPTFinetuneModule`: fine-tune a converted iVideoGPT world model with next-token
cross-entropy on its own token layout, through ``wmkit ar-world fit``.

This is iVideoGPT's recipe (Wu et al. 2024, §3.3; ``train_gpt.py``): the compressive tokenizer
is frozen and codes each clip on the fly (its first ``T0`` frames as context, the rest as
dynamics tokens), the sequence is :class:`~wmkit.ar_world.ivideogpt_layout.IVideoGPTLayout`'s,
and the loss is the causal language-model loss on the positions ``tokenize`` labels: every id
after the first future frame's ``sdf`` (the future frames' ids and the later ``sdf`` slots),
none of the prelude. The run starts from a converted directory (:func:`finetune_start`); an
action-free one given the data's ``action_spec`` gets iVideoGPT's zero-initialised
``action_linear``, so action-free pre-training carries over to action-conditioned prediction.

Batches are core's dicts (``frames`` ``[B, T, C, H, W]`` in [-1, 1], ``actions`` ``[B, T, A]``);
clips longer than the model's ``max_frames`` (the segment length) are cut to it. A
goal-conditioned model (action-free) trains on clips whose last frame is moved to the front
as the goal. Optimiser and
schedule are :class:`~wmkit.ar_world.lit.ARWorldModelModule`'s (AdamW, warm-up, optional cosine).

Where we differ from ``train_gpt.py``: no attention dropout (its config has 0.1), no colour
jitter or random-crop augmentation, no LoRA option, and no reward head.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from wmkit.ar_world.ivideogpt_finetune import finetune_start
from wmkit.ar_world.lit import ARWorldModelModule

__all__ = ["IVideoGPTFinetuneModule"]


class IVideoGPTFinetuneModule(ARWorldModelModule):
    """Teacher-forced fine-tuning of an ``IVideoGPTWorldModel`` (see the module docstring).

    Args:
        pretrained: the ``save_pretrained`` directory to start from (``OUT/world`` of
            ``wmkit convert ivideogpt``, or an earlier fine-tuning's export).
        action_spec: the data's continuous actions (``{kind: continuous, shape: [4], low: -1,
            high: 1}`` for Meta-World); an action-free start gets a zero-initialised action
            projection. ``None``: fine-tune as the model is (action-free on action-free data).
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay (``train_gpt.py`` uses 0).
        warmup_steps: linear warm-up steps (``train_gpt.py``: constant rate after warm-up).
        lr_decay: ``"none"`` or ``"cosine"`` after warm-up.
        min_lr_ratio: the cosine schedule's final rate as a fraction of ``lr``.
        export_dir: where ``fit`` writes the fine-tuned model (``None``: ``<log dir>/pretrained``
            unless ``--export_dir`` is given).
    """

    def __init__(
        self,
        pretrained: str,
        action_spec: dict[str, Any] | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_decay: Literal["none", "cosine"] = "none",
        min_lr_ratio: float = 0.0,
        export_dir: str | None = None,
    ) -> None:
        super().__init__(
            finetune_start(pretrained, action_spec), lr=lr, weight_decay=weight_decay,
            warmup_steps=warmup_steps, lr_decay=lr_decay, min_lr_ratio=min_lr_ratio,
            action_dropout=0.0,
        )  # fmt: skip

    def encode_clip(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Frames ``[B, T, C, H, W]`` in [-1, 1] → context ids ``[B, T0, h, w]`` and raw dynamics
        ids ``[B, T - T0, h', w']`` from the frozen tokenizer. A goal-conditioned model's clip
        is rearranged as ``predict.py`` does: its last frame first, as the goal, then the
        others in time order (that frame is a goal, not a target)."""
        model, t0 = self.model, self.model.layout.context_frames
        if frames.ndim != 5 or frames.shape[1] < t0 + 1:
            raise ValueError(
                f"frames must be [B, T >= {t0 + 1}, C, H, W] ({t0} context frames and at least "
                f"one future frame); got {tuple(frames.shape)}"
            )
        frames = frames[:, : model.max_frames]
        if model.goal_conditioned:  # the clip's last frame is the goal, placed first
            frames = torch.cat([frames[:, -1:], frames[:, :-1]], dim=1)
        with torch.no_grad():
            latents = model.tokenizer.encode(frames, context_frames=t0)
        return latents.values.long(), latents.future.long()

    def losses(self, batch: dict[str, Tensor], train: bool = False) -> dict[str, Tensor]:
        """Cross-entropy and accuracy of the labelled ids of one batch (``train`` is unused:
        the recipe has no train-only augmentation)."""
        model = self.model
        context, future = self.encode_clip(batch["frames"])
        actions = None
        if model.action_conditioned:
            if "actions" not in batch:
                raise ValueError("an action-conditioned model needs batches with 'actions'")
            actions = batch["actions"][:, : context.shape[1] + future.shape[1]].float()
        ids = model.layout.build(context, future)  # [B, L]
        logits = model(context, future, actions)  # [B, L, V]
        start = model.layout.prelude_length  # logits here predict the first future id
        pred = logits[:, start:-1]  # [B, L - prelude - 1, V]
        target = ids[:, start + 1 :]
        ce = F.cross_entropy(pred.flatten(0, 1).float(), target.flatten())
        acc = (pred.argmax(-1) == target).float().mean()
        return {"loss": ce, "token_ce": ce, "token_acc": acc}
