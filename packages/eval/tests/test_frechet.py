"""The float64 Fréchet distance equals the scipy.linalg.sqrtm reference."""

import numpy as np
import pytest
import torch
from scipy import linalg

from wmkit.eval.frechet import frechet_distance, gaussian_stats


def _scipy_reference(mu1, s1, mu2, s2):
    """The classic formula (pytorch-fid / the FVD reference) with scipy's matrix sqrt."""
    covmean = linalg.sqrtm(s1.dot(s2)).real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("dim", [4, 32])
def test_equals_scipy_on_random_gaussians(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(loc=0.3, size=(400, dim)) @ rng.normal(size=(dim, dim)) * 0.7
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    ours = frechet_distance(mu1, s1, mu2, s2)
    ref = _scipy_reference(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_stats_match_numpy_and_distance_to_self_is_zero():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 8))
    mu, sigma = gaussian_stats(torch.from_numpy(f))
    np.testing.assert_allclose(mu.numpy(), f.mean(0), atol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(f, rowvar=False), atol=1e-12)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)
    # singular covariances (fewer samples than dims) stay real and finite
    few = torch.from_numpy(rng.normal(size=(3, 16)))
    m, s = gaussian_stats(few)
    assert frechet_distance(m, s, m, s) == pytest.approx(0, abs=1e-9)
    assert np.isfinite(frechet_distance(m, s, m + 1, s))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError, match="finite float"):
        frechet_distance(torch.full((2,), float("nan")), torch.eye(2), torch.zeros(2), torch.eye(2))
