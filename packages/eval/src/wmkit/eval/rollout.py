"""Rollout evaluation: any ``wmkit.core.WorldModel`` on held-out clips, beside baselines.

For every clip of ``context + horizon`` frames: the model sees the first ``context`` frames
(and the actions between them), then is rolled out for ``horizon`` steps under the real
actions (``num_samples`` times with different seeds for a stochastic model; metrics are
averaged over samples). The predictions are compared with the real frames per horizon step
(PSNR, SSIM, optionally LPIPS) and overall, always beside copy-last-frame and, when the model's
tokenizer is given, the tokenizer's reconstruction of the real frames (the ceiling).
Controllability is measured by ΔPSNR (true vs other actions) and, with an inverse-dynamics
model, IDM action accuracy on generated frames; FVD on ``context + horizon`` clips when an
FVD feature extractor is given and clips have at least 9 frames. When the batches carry
``rewards``/``dones`` and the model predicts them, its reward and termination predictions along
its own rollouts are scored too (:mod:`wmkit.eval.heads`).

PSNR is the PSNR of the mean MSE over the clips (per step, and over all steps for
``overall``), torchmetrics' default reduction; the mean of capped per-frame PSNRs is reported
beside it as ``psnr_frame_mean`` (see :mod:`wmkit.eval.frame_metrics` for why it is not the
headline: exact repeats give the cap). ΔPSNR uses the same PSNR of mean MSE.

Only the protocols are used, so this works for every wmkit world model and tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from wmkit.core.batch import Batch
from wmkit.core.protocols import Tokenizer, WorldModel
from wmkit.core.video import check_video
from wmkit.eval.baselines import CopyLastFrame, tokenizer_reconstruction
from wmkit.eval.controllability import delta_psnr
from wmkit.eval.frame_metrics import (
    PerStepMean,
    frame_lpips,
    frame_mse,
    frame_psnr,
    frame_ssim,
    psnr_from_mse,
)
from wmkit.eval.fvd import FrechetVideoDistance
from wmkit.eval.heads import HeadScores, reward_transform_of
from wmkit.eval.i3d import MIN_FRAMES
from wmkit.eval.idm import InverseDynamicsModel, idm_accuracy
from wmkit.eval.rollout_evaluation import (
    HIGHER_IS_BETTER,
    IMAGE_MEASURES,
    METHOD_LABELS,
    METRIC_LABELS,
    RolloutEvaluation,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "IMAGE_MEASURES",
    "METHOD_LABELS",
    "METRIC_LABELS",
    "RolloutEvaluation",
    "evaluate_rollouts",
]


def _split(batch: Batch, context: int, horizon: int) -> tuple[Tensor, ...]:
    frames, actions = batch.frames, batch.actions
    check_video(frames, "batch frames")
    need = context + horizon
    if frames.shape[1] < need or actions.shape[1] < need - 1:
        raise ValueError(
            f"clips must have at least context + horizon = {need} frames (and {need - 1} "
            f"actions); got {frames.shape[1]} frames, {actions.shape[1]} actions"
        )
    frames = frames[:, :need]
    ctx = frames[:, :context]
    ctx_actions = actions[:, : context - 1] if context > 1 else None
    step_actions = actions[:, context - 1 : need - 1]  # action t follows frame t
    return frames, ctx, ctx_actions, step_actions, frames[:, context:]


@dataclass
class _Running:
    """Every running measure of one :func:`evaluate_rollouts` call, updated clip batch by clip
    batch and turned into the result at the end (one object instead of a dozen loop locals).

    ``acc``: ``method → metric → PerStepMean`` of the image measures; ``ctrl``: the ΔPSNR MSEs
    under true and other actions; ``idm_acc``: IDM accuracy per source (empty without an IDM);
    ``fvd``: one FVD per method (``None`` when not measured); ``kept``: report clips per label.
    """

    methods: list[str]
    names: list[str]
    acc: dict[str, dict[str, PerStepMean]]
    ctrl: dict[str, PerStepMean]
    idm_acc: dict[str, PerStepMean]
    fvd: dict[str, FrechetVideoDistance] | None
    heads: HeadScores
    notes: list[str]
    kept: dict[str, list[Tensor]] = field(default_factory=dict)
    num_clips: int = 0


def _start(
    world_model: WorldModel,
    *,
    context: int,
    horizon: int,
    with_tokenizer: bool,
    with_lpips: bool,
    fvd_extractor: Callable[[Tensor], Tensor] | None,
    fvd_feature_dim: int,
    with_idm: bool,
) -> _Running:
    """Empty accumulators for the methods and measures this call will report; FVD is only set
    up when clips are long enough for I3D (else a note says why it is missing)."""
    methods = ["model", "copy_last_frame"] + (["tokenizer_recon"] if with_tokenizer else [])
    names = ["mse", "psnr_frame_mean", "ssim"] + (["lpips"] if with_lpips else [])
    notes: list[str] = []
    fvd = None
    if fvd_extractor is not None:
        if context + horizon >= MIN_FRAMES:
            fvd = {
                m: FrechetVideoDistance(fvd_extractor, feature_dim=fvd_feature_dim) for m in methods
            }
        else:
            notes.append(
                f"FVD not computed: clips of context + horizon = {context + horizon} frames are "
                f"shorter than I3D's minimum of {MIN_FRAMES}"
            )
    return _Running(
        methods=methods,
        names=names,
        acc={m: {n: PerStepMean(horizon) for n in names} for m in methods},
        ctrl={k: PerStepMean(horizon) for k in ("true", "other", "delta_frame_mean")},
        idm_acc=(
            {k: PerStepMean(horizon) for k in ("real", "model", "copy_last_frame")}
            if with_idm
            else {}
        ),
        fvd=fvd,
        heads=HeadScores(horizon, reward_transform_of(world_model)),
        notes=notes,
    )


def _update_image_measures(
    run: _Running,
    samples: list[Tensor],
    preds: dict[str, Tensor],
    target: Tensor,
    lpips: Callable[[Tensor, Tensor], Tensor] | None,
) -> None:
    """Per-step MSE, per-frame PSNR, SSIM (and LPIPS) of every method against ``target``; the
    model's are averaged over its ``samples`` before they enter the running mean."""
    fns = (("mse", frame_mse), ("psnr_frame_mean", frame_psnr), ("ssim", frame_ssim))
    for name, fn in fns:
        run.acc["model"][name].update(torch.stack([fn(p, target) for p in samples]).mean(0))
        for m in run.methods[1:]:
            run.acc[m][name].update(fn(preds[m], target))
    if lpips is not None:
        run.acc["model"]["lpips"].update(
            torch.stack([frame_lpips(p, target, lpips) for p in samples]).mean(0)
        )
        for m in run.methods[1:]:
            run.acc[m]["lpips"].update(frame_lpips(preds[m], target, lpips))


def _keep_videos(
    run: _Running,
    clip: Tensor,
    ctx: Tensor,
    preds: dict[str, Tensor],
    frames_other: Tensor,
    keep_videos: int,
) -> None:
    """Keep the first clips (up to ``keep_videos``) of ground truth, each method and the
    model under other actions, on the CPU, for the report."""
    if sum(v.shape[0] for v in run.kept.get("ground truth", [])) >= keep_videos:
        return
    k = keep_videos
    run.kept.setdefault("ground truth", []).append(clip[:k].cpu())
    for m in run.methods:
        run.kept.setdefault(METHOD_LABELS[m], []).append(torch.cat([ctx, preds[m]], 1)[:k].cpu())
    run.kept.setdefault("world model, other actions", []).append(
        torch.cat([ctx, frames_other], 1)[:k].cpu()
    )


def _image_results(
    run: _Running,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, float]]]:
    """``per_step`` and ``overall`` of every method: PSNR of the mean MSE beside each running
    mean, and FVD (which needs at least two clips, else a note)."""
    per_step: dict[str, dict[str, list[float]]] = {}
    overall: dict[str, dict[str, float]] = {}
    for m in run.methods:
        mse = run.acc[m]["mse"]
        per_step[m] = {"psnr": psnr_from_mse(mse.compute()).tolist()}
        overall[m] = {"psnr": float(psnr_from_mse(mse.overall()))}
        for n in run.names:
            per_step[m][n] = run.acc[m][n].compute().tolist()
            overall[m][n] = run.acc[m][n].overall()
    if run.fvd is not None:
        if run.num_clips >= 2:
            for m in run.methods:
                overall[m]["fvd"] = float(run.fvd[m].compute())
        else:
            run.notes.append("FVD not computed: it needs at least 2 clips")
    return per_step, overall


def _controllability_results(run: _Running, action_mode: str) -> dict[str, Any]:
    """ΔPSNR overall and per step (PSNR of mean MSE under true minus other actions), and the
    IDM accuracies when an IDM was given."""
    ctrl = run.ctrl
    psnr_true, psnr_other = (psnr_from_mse(ctrl[k].overall()) for k in ("true", "other"))
    per_step_delta = psnr_from_mse(ctrl["true"].compute()) - psnr_from_mse(ctrl["other"].compute())
    controllability: dict[str, Any] = {
        "action_mode": action_mode,
        "delta_psnr": float(psnr_true - psnr_other),
        "delta_psnr_per_step": per_step_delta.tolist(),
        "psnr_true": float(psnr_true),
        "psnr_other": float(psnr_other),
        "delta_psnr_frame_mean": ctrl["delta_frame_mean"].overall(),
    }
    if run.idm_acc:
        controllability["idm_accuracy"] = {k: v.overall() for k, v in run.idm_acc.items()}
        controllability["idm_accuracy_per_step"] = {
            k: v.compute().tolist() for k, v in run.idm_acc.items()
        }
    return controllability


def _score_batch(
    run: _Running,
    world_model: WorldModel,
    copy_last: CopyLastFrame,
    batch: Batch | Mapping[str, Tensor],
    *,
    context: int,
    horizon: int,
    tokenizer: Tokenizer | None,
    lpips: Callable[[Tensor, Tensor], Tensor] | None,
    idm: InverseDynamicsModel | None,
    num_samples: int,
    action_mode: Literal["shuffle", "random"],
    seed: int,
    keep_videos: int,
    device: str | torch.device | None,
) -> None:
    """Roll the model out ``num_samples`` times on one batch of clips (seed ``seed + s`` each),
    roll out the baselines, and add every measure of this batch to ``run``."""
    batch = Batch.coerce(batch, require=("frames", "actions"))
    if device is not None:
        batch = batch.to(device)
    clip, ctx, ctx_actions, step_actions, target = _split(batch, context, horizon)
    rollouts = []
    for s in range(num_samples):
        torch.manual_seed(seed + s)
        rollouts.append(world_model.rollout(ctx, step_actions, ctx_actions))
    samples = [r.frames for r in rollouts]
    steps = slice(context - 1, context - 1 + horizon)  # reward/done t follow action t
    run.heads.update(
        [r.rewards for r in rollouts],
        [r.dones for r in rollouts],
        batch.rewards[:, steps] if batch.rewards is not None else None,
        batch.dones[:, steps] if batch.dones is not None else None,
    )
    preds = {"copy_last_frame": copy_last.rollout(ctx, step_actions, ctx_actions).frames}
    if tokenizer is not None:
        preds["tokenizer_recon"] = tokenizer_reconstruction(tokenizer, clip, horizon)
    _update_image_measures(run, samples, preds, target, lpips)
    preds["model"] = samples[0]
    c = delta_psnr(
        world_model, ctx, step_actions, target, context_actions=ctx_actions,
        predicted=samples[0], mode=action_mode, seed=seed,
    )  # fmt: skip
    run.ctrl["true"].update(c.mse_true)
    run.ctrl["other"].update(c.mse_other)
    run.ctrl["delta_frame_mean"].update(c.delta)
    last = ctx[:, -1:]
    if idm is not None:
        run.idm_acc["real"].update(idm_accuracy(idm, torch.cat([last, target], 1), step_actions))
        for m in ("model", "copy_last_frame"):
            run.idm_acc[m].update(idm_accuracy(idm, torch.cat([last, preds[m]], 1), step_actions))
    if run.fvd is not None:
        for m in run.methods:
            run.fvd[m].update(clip, real=True)
            run.fvd[m].update(torch.cat([ctx, preds[m]], 1), real=False)
    _keep_videos(run, clip, ctx, preds, c.frames_other, keep_videos)
    run.num_clips += clip.shape[0]


@torch.no_grad()
def evaluate_rollouts(
    world_model: WorldModel,
    batches: Iterable[Batch | Mapping[str, Tensor]],
    *,
    context: int,
    horizon: int,
    tokenizer: Tokenizer | None = None,
    lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
    fvd_extractor: Callable[[Tensor], Tensor] | None = None,
    fvd_feature_dim: int = 400,
    idm: InverseDynamicsModel | None = None,
    num_samples: int = 1,
    action_mode: Literal["shuffle", "random"] = "random",
    seed: int = 0,
    max_batches: int | None = None,
    keep_videos: int = 4,
    device: str | torch.device | None = None,
) -> RolloutEvaluation:
    """Evaluate ``world_model`` on ``batches`` of clips (dicts with ``frames [B, T, C, H, W]``
    in [-1, 1] and ``actions [B, T, ...]``, ``T >= context + horizon``), e.g. a
    ``ClipDataset``'s loader.

    Args:
        context: frames the model observes (``T0 >= 1``).
        horizon: frames it generates (``H >= 1``).
        tokenizer: the model's tokenizer, for the reconstruction ceiling.
        lpips: an LPIPS network (``wmkit.core.lpips.LPIPS``) to add the LPIPS metric.
        fvd_extractor: video features for FVD (``wmkit.eval.fvd.I3DFeatures()``); FVD is
            computed on whole clips when ``context + horizon >= 9``.
        idm: a trained inverse-dynamics model for IDM action accuracy.
        num_samples: rollouts per clip (seeds ``seed .. seed + num_samples - 1``).
        action_mode: how ΔPSNR's other actions are chosen (``"random"`` or ``"shuffle"``).
        max_batches: stop after this many batches.
        keep_videos: clips kept for the report.
    """
    if context < 1 or horizon < 1 or num_samples < 1:
        raise ValueError(
            f"context, horizon and num_samples must be >= 1; got {context}, {horizon}, "
            f"{num_samples}"
        )
    copy_last = CopyLastFrame(world_model.action_spec)
    run = _start(
        world_model,
        context=context,
        horizon=horizon,
        with_tokenizer=tokenizer is not None,
        with_lpips=lpips is not None,
        fvd_extractor=fvd_extractor,
        fvd_feature_dim=fvd_feature_dim,
        with_idm=idm is not None,
    )
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        _score_batch(
            run, world_model, copy_last, batch, context=context, horizon=horizon,
            tokenizer=tokenizer, lpips=lpips, idm=idm, num_samples=num_samples,
            action_mode=action_mode, seed=seed, keep_videos=keep_videos, device=device,
        )  # fmt: skip
    if run.num_clips == 0:
        raise ValueError("batches yielded no clips")

    per_step, overall = _image_results(run)
    controllability = _controllability_results(run, action_mode)
    for m in overall.values():
        for k, v in m.items():
            if isinstance(v, float) and not math.isfinite(v):
                run.notes.append(f"{k} is not finite")
    return RolloutEvaluation(
        context=context,
        horizon=horizon,
        num_clips=run.num_clips,
        num_samples=num_samples,
        per_step=per_step,
        overall=overall,
        controllability=controllability,
        videos={k: torch.cat(v)[:keep_videos] for k, v in run.kept.items()},
        notes=run.notes,
        heads=run.heads.compute(),
    )
