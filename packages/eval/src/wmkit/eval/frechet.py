"""The Fréchet distance between two Gaussians, in float64 (FID, Heusel et al. 2017; FVD,
Unterthiner et al. 2018).

``d² = |μ1 − μ2|² + tr(Σ1) + tr(Σ2) − 2 tr((Σ1 Σ2)^½)``.

The reference implementations (pytorch-fid, the FVD code) compute ``scipy.linalg.sqrtm(Σ1 Σ2)``
and take its trace. We compute the same trace without the non-symmetric square root:
``Σ1 Σ2`` is similar to the symmetric PSD matrix ``Σ1^½ Σ2 Σ1^½``, so
``tr((Σ1 Σ2)^½) = Σ_i sqrt(λ_i(Σ1^½ Σ2 Σ1^½))``, using two symmetric eigendecompositions
(``torch.linalg.eigh``) in float64. This agrees with the scipy route to 1e-6 relative (tested)
and stays real and finite for singular covariances (fewer samples than feature dimensions),
where ``sqrtm`` returns complex noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["frechet_distance", "gaussian_stats"]


def _as64(x: Tensor | np.ndarray, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if not (t.is_floating_point() and torch.isfinite(t).all()):
        raise ValueError(f"{name} must be a finite float array; got {t.dtype}")
    return t.detach().to("cpu", torch.float64)


def gaussian_stats(features: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of ``features [N, D]``, N >= 2."""
    f = _as64(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2; got {tuple(f.shape)}")
    mu = f.mean(0)
    centered = f - mu
    return mu, centered.T @ centered / (f.shape[0] - 1)


def _sqrt_psd(m: Tensor) -> Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(
    mu1: Tensor | np.ndarray,
    sigma1: Tensor | np.ndarray,
    mu2: Tensor | np.ndarray,
    sigma2: Tensor | np.ndarray,
) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (float64)."""
    m1, s1, m2, s2 = (
        _as64(x, n) for x, n in ((mu1, "mu1"), (sigma1, "sigma1"), (mu2, "mu2"), (sigma2, "sigma2"))
    )
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"expected mu [D] and sigma [D, D] with one D; got mu1 {tuple(m1.shape)}, sigma1 "
            f"{tuple(s1.shape)}, mu2 {tuple(m2.shape)}, sigma2 {tuple(s2.shape)}"
        )
    root1 = _sqrt_psd(s1)
    inner = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0)
    diff = m1 - m2
    value = diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * eig.sqrt().sum()
    return float(value.clamp_min(0))
