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
from dataclasses import asdict, dataclass, field
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

__all__ = ["IMAGE_MEASURES", "METHOD_LABELS", "RolloutEvaluation", "evaluate_rollouts"]

METHOD_LABELS = {
    "model": "world model",
    "copy_last_frame": "copy last frame",
    "tokenizer_recon": "tokenizer reconstruction (ceiling)",
}
HIGHER_IS_BETTER = {
    "psnr": True,
    "psnr_frame_mean": True,
    "ssim": True,
    "lpips": False,
    "fvd": False,
}
METRIC_LABELS = {"psnr_frame_mean": "PSNR/frame"}
# The standard image measures a world model is compared on (DESIGN.md §7): it "beats" a
# baseline only when it is better on every one of them.
IMAGE_MEASURES = ("psnr", "psnr_frame_mean", "ssim", "lpips")


@dataclass
class RolloutEvaluation:
    """Results of :func:`evaluate_rollouts`.

    Attributes:
        context, horizon, num_clips, num_samples: the setting.
        per_step: ``method → metric → [horizon]`` means per step.
        overall: ``method → metric → value`` (per-frame means; ``fvd`` per clip set).
        controllability: ``delta_psnr`` (mean), ``delta_psnr_per_step``, ``psnr_true``,
            ``psnr_other``, ``action_mode`` and, with an IDM, ``idm_accuracy`` per method.
        videos: a few clips for the report, ``name → [K, context + horizon, C, H, W]``
            (ground truth, each method, the model under other actions).
        notes: why something was not measured.
        heads: the model's predicted rewards and terminations against the recorded ones
            (:class:`~wmkit.eval.heads.HeadScores`; empty when not measured).
    """

    context: int
    horizon: int
    num_clips: int
    num_samples: int
    per_step: dict[str, dict[str, list[float]]]
    overall: dict[str, dict[str, float]]
    controllability: dict[str, Any]
    videos: dict[str, Tensor] = field(repr=False)
    notes: list[str] = field(default_factory=list)
    heads: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able results (no videos)."""
        out = asdict(self)
        out.pop("videos")
        return out

    def comparison(self, baseline: str = "copy_last_frame") -> dict[str, bool | None]:
        """Per image measure (:data:`IMAGE_MEASURES`): whether the model is strictly better
        than ``baseline``; ``None`` where either was not measured."""
        if baseline not in self.overall:
            raise KeyError(f"no baseline {baseline!r}; measured: {sorted(self.overall)}")
        model, base = self.overall["model"], self.overall[baseline]
        out: dict[str, bool | None] = {}
        for m in IMAGE_MEASURES:
            if m not in model or m not in base:
                out[m] = None
            else:
                better = model[m] > base[m] if HIGHER_IS_BETTER[m] else model[m] < base[m]
                out[m] = bool(better)
        return out

    def beats(self, baseline: str = "copy_last_frame") -> bool:
        """True only when the model is better than ``baseline`` on every image measure, all of
        them measured."""
        return all(v is True for v in self.comparison(baseline).values())

    def verdict(self, baseline: str = "copy_last_frame") -> str:
        """One line: whether the model beats ``baseline`` on all image measures, and if not,
        where it wins, where it loses and what was not measured."""
        label = METHOD_LABELS.get(baseline, baseline)
        comparison = self.comparison(baseline)
        names = {m: METRIC_LABELS.get(m, m.upper()) for m in comparison}
        if self.beats(baseline):
            return f"world model beats {label} on all {len(comparison)} image measures"
        parts = []
        for outcome, word in ((True, "better"), (False, "worse"), (None, "not measured")):
            which = [names[m] for m, v in comparison.items() if v is outcome]
            if which:
                parts.append(f"{word} on {', '.join(which)}")
        return f"world model does NOT beat {label} on all image measures: " + "; ".join(parts)

    def markdown_table(self) -> str:
        """Overall metrics per method as a Markdown table (arrows say which way is better)."""
        metrics = [
            m
            for m in ("psnr", "psnr_frame_mean", "ssim", "lpips", "fvd")
            if any(m in v for v in self.overall.values())
        ]
        head = [
            "method",
            *[
                f"{METRIC_LABELS.get(m, m.upper())} {'↑' if HIGHER_IS_BETTER[m] else '↓'}"
                for m in metrics
            ],
        ]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, values in self.overall.items():
            cells = [METHOD_LABELS.get(method, method)]
            for m in metrics:
                v = values.get(m)
                cells.append("–" if v is None else f"{v:.4g}" if m == "fvd" else f"{v:.4f}")
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)


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
    methods = ["model", "copy_last_frame"] + (["tokenizer_recon"] if tokenizer is not None else [])
    names = ["mse", "psnr_frame_mean", "ssim"] + (["lpips"] if lpips is not None else [])
    acc = {m: {n: PerStepMean(horizon) for n in names} for m in methods}
    ctrl = {k: PerStepMean(horizon) for k in ("true", "other", "delta_frame_mean")}
    idm_acc = {k: PerStepMean(horizon) for k in ("real", "model", "copy_last_frame")} if idm else {}
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
    kept: dict[str, list[Tensor]] = {}
    head_scores = HeadScores(horizon, reward_transform_of(world_model))
    num_clips = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        batch = Batch.coerce(batch, require=("frames", "actions"))
        if device is not None:
            batch = batch.to(device)
        clip, ctx, ctx_actions, step_actions, target = _split(batch, context, horizon)
        preds: dict[str, Tensor] = {}
        rollouts = []
        for s in range(num_samples):
            torch.manual_seed(seed + s)
            rollouts.append(world_model.rollout(ctx, step_actions, ctx_actions))
        samples = [r.frames for r in rollouts]
        steps = slice(context - 1, context - 1 + horizon)  # reward/done t follow action t
        head_scores.update(
            [r.rewards for r in rollouts],
            [r.dones for r in rollouts],
            batch.rewards[:, steps] if batch.rewards is not None else None,
            batch.dones[:, steps] if batch.dones is not None else None,
        )
        preds["copy_last_frame"] = copy_last.rollout(ctx, step_actions, ctx_actions).frames
        if tokenizer is not None:
            preds["tokenizer_recon"] = tokenizer_reconstruction(tokenizer, clip, horizon)
        fns = (("mse", frame_mse), ("psnr_frame_mean", frame_psnr), ("ssim", frame_ssim))
        for name, fn in fns:
            acc["model"][name].update(torch.stack([fn(p, target) for p in samples]).mean(0))
            for m in methods[1:]:
                acc[m][name].update(fn(preds[m], target))
        if lpips is not None:
            acc["model"]["lpips"].update(
                torch.stack([frame_lpips(p, target, lpips) for p in samples]).mean(0)
            )
            for m in methods[1:]:
                acc[m]["lpips"].update(frame_lpips(preds[m], target, lpips))
        preds["model"] = samples[0]
        c = delta_psnr(
            world_model, ctx, step_actions, target, context_actions=ctx_actions,
            predicted=samples[0], mode=action_mode, seed=seed,
        )  # fmt: skip
        ctrl["true"].update(c.mse_true)
        ctrl["other"].update(c.mse_other)
        ctrl["delta_frame_mean"].update(c.delta)
        last = ctx[:, -1:]
        if idm is not None:
            idm_acc["real"].update(idm_accuracy(idm, torch.cat([last, target], 1), step_actions))
            for m in ("model", "copy_last_frame"):
                idm_acc[m].update(idm_accuracy(idm, torch.cat([last, preds[m]], 1), step_actions))
        if fvd is not None:
            for m in methods:
                fvd[m].update(clip, real=True)
                fvd[m].update(torch.cat([ctx, preds[m]], 1), real=False)
        if sum(v.shape[0] for v in kept.get("ground truth", [])) < keep_videos:
            k = keep_videos
            kept.setdefault("ground truth", []).append(clip[:k].cpu())
            for m in methods:
                kept.setdefault(METHOD_LABELS[m], []).append(
                    torch.cat([ctx, preds[m]], 1)[:k].cpu()
                )
            kept.setdefault("world model, other actions", []).append(
                torch.cat([ctx, c.frames_other], 1)[:k].cpu()
            )
        num_clips += clip.shape[0]
    if num_clips == 0:
        raise ValueError("batches yielded no clips")

    per_step: dict[str, dict[str, list[float]]] = {}
    overall: dict[str, dict[str, float]] = {}
    for m in methods:
        mse = acc[m]["mse"]
        per_step[m] = {"psnr": psnr_from_mse(mse.compute()).tolist()}
        overall[m] = {"psnr": float(psnr_from_mse(mse.overall()))}
        for n in names:
            per_step[m][n] = acc[m][n].compute().tolist()
            overall[m][n] = acc[m][n].overall()
    if fvd is not None:
        if num_clips >= 2:
            for m in methods:
                overall[m]["fvd"] = float(fvd[m].compute())
        else:
            notes.append("FVD not computed: it needs at least 2 clips")
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
    if idm is not None:
        controllability["idm_accuracy"] = {k: v.overall() for k, v in idm_acc.items()}
        controllability["idm_accuracy_per_step"] = {
            k: v.compute().tolist() for k, v in idm_acc.items()
        }
    videos = {k: torch.cat(v)[:keep_videos] for k, v in kept.items()}
    for m in overall.values():
        for k, v in m.items():
            if isinstance(v, float) and not math.isfinite(v):
                notes.append(f"{k} is not finite")
    return RolloutEvaluation(
        context=context,
        horizon=horizon,
        num_clips=num_clips,
        num_samples=num_samples,
        per_step=per_step,
        overall=overall,
        controllability=controllability,
        videos=videos,
        notes=notes,
        heads=head_scores.compute(),
    )
