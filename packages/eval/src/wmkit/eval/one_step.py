"""Reward and termination heads scored one step from real context, on every transition.

Along rollouts (:func:`~wmkit.eval.rollout.evaluate_rollouts`) a head is judged on
``clips x horizon`` transitions only, and on frames that drift from the real ones. With
sparse rewards that figure rests on a handful of events: the quickstart's Crafter rollouts
hold about 2 rewards in 192 steps, so one false alarm moves it more than the head's skill.
:func:`score_heads_one_step` instead predicts *every* transition of the clips from its real
past: the model generates frame ``t + 1`` from the real frames up to ``t`` and the real action
``t``, and its heads read that generation, as in a rollout's first step. The figures (the
same as :class:`~wmkit.eval.heads.HeadScores`', with ``horizon = 1``) then separate the
heads' skill from rollout drift.

Feed it clips of ``context + 1`` frames taken at every start, e.g.
``ClipDataset(source, clip_length=context + 1, mode="sequential", stride=1)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from wmkit.core.batch import Batch
from wmkit.core.protocols import WorldModel
from wmkit.core.video import check_video
from wmkit.eval.heads import HeadScores, reward_transform_of

__all__ = ["score_heads_one_step"]


@torch.no_grad()
def score_heads_one_step(
    world_model: WorldModel,
    batches: Iterable[Mapping[str, Tensor]],
    *,
    context: int,
    seed: int = 0,
    max_batches: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Score ``world_model``'s reward and done heads on the transition after each clip's
    ``context`` real frames (clips: ``frames [B, >= context + 1, C, H, W]``, ``actions``,
    ``rewards``/``dones [B, T]``).

    Returns :meth:`HeadScores.compute`'s overall figures (none without heads or targets) plus
    ``transitions``, the number scored. Transitions whose step a batch's ``step_mask`` marks
    as padding are skipped.
    """
    if context < 1:
        raise ValueError(f"context must be >= 1; got {context}")
    scores = HeadScores(1, reward_transform_of(world_model))
    scored = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        batch = Batch.coerce(batch, require=("frames", "actions"))
        frames, actions = batch.frames, batch.actions
        check_video(frames, "batch frames")
        if frames.shape[1] < context + 1 or actions.shape[1] < context:
            raise ValueError(
                f"clips must have at least context + 1 = {context + 1} frames and {context} "
                f"actions; got {frames.shape[1]} frames, {actions.shape[1]} actions"
            )
        keep = torch.ones(frames.shape[0], dtype=torch.bool)
        if batch.step_mask is not None:
            keep = batch.step_mask[:, context - 1].bool().cpu()
        if not keep.any():
            continue
        frames, actions = frames[keep], actions[keep]
        if device is not None:
            frames, actions = frames.to(device), actions.to(device)
        ctx_actions = actions[:, : context - 1] if context > 1 else None
        torch.manual_seed(seed)
        out = world_model.rollout(
            frames[:, :context], actions[:, context - 1 : context], ctx_actions
        )
        step = slice(context - 1, context)  # reward/done t follow action t
        targets = [None if t is None else t[keep][:, step] for t in (batch.rewards, batch.dones)]
        scores.update([out.rewards], [out.dones], *targets)
        scored += int(keep.sum())
    out = {k: v for k, v in scores.compute().items() if not k.endswith("_per_step")}
    return {**out, "transitions": scored}
