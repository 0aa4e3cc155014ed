"""Fréchet Video Distance (Unterthiner et al. 2018) as a streaming torchmetrics ``Metric``.

FVD is the Fréchet distance between Gaussians fitted to I3D (Kinetics-400) logits of real and
generated clips: ``update(video, real=True|False)`` adds clips ``[B, T, C, H, W]`` in [-1, 1]
(resized to 224x224, ``T >= 9``; the reference uses 16 frames), ``compute()`` returns the
distance (float64 sums and outer products, so it streams over any number of batches and syncs
across processes). Lower is better; it needs many clips to be meaningful (the reference uses
256+ per side) and is biased upwards for small sets, so compare numbers computed with the same
number of clips.

The feature network is injectable (``extractor``): any module mapping ``[B, T, C, H, W]`` to
``[B, D]``; the default is :class:`wmkit.eval.i3d.I3D` with :func:`preprocess_for_i3d`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from wmkit.core.video import check_video
from wmkit.eval.frechet import frechet_distance
from wmkit.eval.i3d import I3D, preprocess_for_i3d

__all__ = ["FrechetVideoDistance", "I3DFeatures"]


class I3DFeatures(nn.Module):
    """wmkit video ``[B, T, C, H, W]`` → I3D logits ``[B, 400]`` (the FVD features)."""

    def __init__(self, i3d: I3D | None = None, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.i3d = i3d if i3d is not None else I3D(weights)

    def forward(self, video: Tensor) -> Tensor:
        return self.i3d(preprocess_for_i3d(video).to(next(self.i3d.parameters()).dtype))


class FrechetVideoDistance(Metric):
    """Streaming FVD.

    Args:
        extractor: feature network ``[B, T, C, H, W] → [B, D]``; default I3D logits loaded
            from ``weights`` (or the weights cache; missing → ``MissingWeightsError``).
        weights: path to converted I3D safetensors (used when ``extractor`` is ``None``).
        feature_dim: ``D`` of the extractor's output (400 for I3D logits).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(
        self,
        extractor: Callable[[Tensor], Tensor] | None = None,
        weights: str | os.PathLike | None = None,
        feature_dim: int = 400,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.extractor = extractor if extractor is not None else I3DFeatures(weights=weights)
        d = feature_dim
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.feature_dim = d

    @torch.no_grad()
    def features(self, video: Tensor) -> Tensor:
        """Features ``[B, D]`` of ``video`` (float64)."""
        check_video(video)
        f = self.extractor(video)
        if f.ndim != 2 or f.shape != (video.shape[0], self.feature_dim):
            raise ValueError(f"extractor must return [B, {self.feature_dim}]; got {tuple(f.shape)}")
        return f.double()

    def update(self, video: Tensor, real: bool) -> None:
        f = self.features(video).to(self.real_sum.device)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + f.shape[0])

    def _stats(self, side: str) -> tuple[Tensor, Tensor]:
        n = getattr(self, f"{side}_n")
        if n < 2:
            raise RuntimeError(f"FVD needs at least 2 {side} clips; got {int(n)}")
        mu = getattr(self, f"{side}_sum") / n
        cov = (getattr(self, f"{side}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> Tensor:
        mu_r, s_r = self._stats("real")
        mu_f, s_f = self._stats("fake")
        return torch.tensor(frechet_distance(mu_r, s_r, mu_f, s_f), dtype=torch.float64)
