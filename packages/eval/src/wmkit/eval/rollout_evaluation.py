"""The result of a rollout evaluation and how it reads: :class:`RolloutEvaluation` with its
method/metric labels, the model-vs-baseline comparison on the image measures and the Markdown
table. Computed by :func:`wmkit.eval.rollout.evaluate_rollouts`; kept apart so the report
code can read results without the evaluation loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

__all__ = [
    "HIGHER_IS_BETTER",
    "IMAGE_MEASURES",
    "METHOD_LABELS",
    "METRIC_LABELS",
    "RolloutEvaluation",
]

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
    """Results of :func:`~wmkit.eval.rollout.evaluate_rollouts`.

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
