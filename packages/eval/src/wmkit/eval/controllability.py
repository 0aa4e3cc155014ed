"""Action controllability: do a world model's predictions depend on the actions?

ΔPSNR (Genie, Bruce et al. 2024, §4): roll the model out from the same context twice, once
with the actions that really followed and once with other actions, and compare both to the
real future: ``ΔPSNR_t = PSNR(x_t, x̂_t) − PSNR(x_t, x̂'_t)``. A model that ignores its actions
scores ~0; a controllable one is clearly positive. Genie samples the other actions at random;
we also offer ``"shuffle"`` (the batch's action sequences rolled by one, so the other actions
have the real marginal statistics, e.g. sticky actions). Where we differ: Genie infers latent
actions from the real video; here the true actions come from the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from wmkit.core.protocols import WorldModel
from wmkit.eval.frame_metrics import frame_mse, frame_psnr

__all__ = ["ControllabilityResult", "delta_psnr", "other_actions"]


@dataclass
class ControllabilityResult:
    """``psnr_true``/``psnr_other``/``delta`` (per-frame PSNR) and ``mse_true``/``mse_other``:
    ``[B, H]`` per clip and step; ``frames_other``: the rollout under the other actions
    ``[B, H, C, H, W]``. Over a dataset, average the MSEs and take
    :func:`~wmkit.eval.frame_metrics.psnr_from_mse` of each (what the rollout evaluator does)."""

    psnr_true: Tensor
    psnr_other: Tensor
    delta: Tensor
    frames_other: Tensor
    mse_true: Tensor
    mse_other: Tensor

    @property
    def mean_delta(self) -> float:
        return float(self.delta.mean())


def other_actions(
    world_model: WorldModel,
    actions: Tensor,
    mode: Literal["shuffle", "random"] = "random",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Actions to compare against: ``"random"`` samples the spec uniformly, ``"shuffle"`` rolls
    the batch by one (needs B >= 2)."""
    if mode == "shuffle":
        if actions.shape[0] < 2:
            raise ValueError("mode='shuffle' needs a batch of at least 2 clips; use 'random'")
        return actions.roll(1, dims=0)
    if mode == "random":
        spec = world_model.action_spec
        return spec.sample(tuple(actions.shape[:2]), generator=generator).to(actions.device)
    raise ValueError(f"mode must be 'shuffle' or 'random'; got {mode!r}")


@torch.no_grad()
def delta_psnr(
    world_model: WorldModel,
    context_frames: Tensor,
    actions: Tensor,
    target_frames: Tensor,
    *,
    context_actions: Tensor | None = None,
    predicted: Tensor | None = None,
    mode: Literal["shuffle", "random"] = "random",
    seed: int = 0,
) -> ControllabilityResult:
    """ΔPSNR of ``world_model`` on one batch.

    Args:
        context_frames: ``[B, T0, C, H, W]``.
        actions: the real actions ``[B, H, ...]`` that produced ``target_frames [B, H, C, H, W]``.
        context_actions: actions between context frames, if the model uses them.
        predicted: the rollout under the real actions if already computed (saves a rollout).
        mode: how the other actions are chosen (see :func:`other_actions`).
        seed: seeds the random actions and both rollouts (same noise for a stochastic model).
    """
    if predicted is None:
        torch.manual_seed(seed)
        predicted = world_model.rollout(context_frames, actions, context_actions).frames
    g = torch.Generator().manual_seed(seed)
    alt = other_actions(world_model, actions, mode, g)
    torch.manual_seed(seed)
    frames_other = world_model.rollout(context_frames, alt, context_actions).frames
    p_true = frame_psnr(predicted, target_frames)
    p_other = frame_psnr(frames_other, target_frames)
    return ControllabilityResult(
        p_true,
        p_other,
        p_true - p_other,
        frames_other,
        frame_mse(predicted, target_frames),
        frame_mse(frames_other, target_frames),
    )
