"""Probes and the nearest-neighbour curve on features whose relation to the action is known."""

import pytest
import torch

from wmkit.core import ActionSpec
from wmkit.latent_action import (
    fit_probe,
    latent_features,
    nearest_neighbour_curve,
    plot_predictiveness,
)


def _discrete(n: int = 400, seed: int = 0):
    spec = ActionSpec.discrete(5)
    gen = torch.Generator().manual_seed(seed)
    actions = spec.sample((n,), generator=gen)
    return spec, actions, gen


def test_discrete_probe_perfect_features_vs_noise():
    spec, actions, gen = _discrete()
    informative = torch.nn.functional.one_hot(actions, 5).float() + 0.1 * torch.randn(
        len(actions), 5, generator=gen
    )
    noise = torch.randn(len(actions), 5, generator=gen)
    for kind in ("linear", "mlp"):
        good = fit_probe(
            informative[:300],
            actions[:300],
            informative[300:],
            actions[300:],
            spec,
            kind,
            steps=150,
        )
        bad = fit_probe(
            noise[:300], actions[:300], noise[300:], actions[300:], spec, kind, steps=150
        )
        assert good.metric == "accuracy" and good.test_score > 0.95
        assert bad.test_score < 0.4
        assert 0.1 < good.chance < 0.4


def test_mlp_probe_reads_a_nonlinear_code_the_linear_probe_cannot():
    spec = ActionSpec.discrete(2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, generator=gen)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()  # XOR
    lin = fit_probe(x[:450], y[:450], x[450:], y[450:], spec, "linear", steps=200)
    mlp = fit_probe(x[:450], y[:450], x[450:], y[450:], spec, "mlp", steps=400)
    assert lin.test_score < 0.7 < 0.9 < mlp.test_score


def test_continuous_probe_r2():
    spec = ActionSpec.continuous(2, -1, 1)
    gen = torch.Generator().manual_seed(0)
    actions = spec.sample((400,), generator=gen)
    feats = actions @ torch.tensor([[1.0, 2.0], [-1.0, 0.5]]) + 0.01 * torch.randn(
        400, 2, generator=gen
    )
    r = fit_probe(feats[:300], actions[:300], feats[300:], actions[300:], spec, "linear")
    assert r.metric == "r2" and r.test_score > 0.95
    noise = torch.randn(400, 3, generator=gen)
    r = fit_probe(noise[:300], actions[:300], noise[300:], actions[300:], spec, "linear")
    assert r.test_score < 0.1


def test_nearest_neighbour_curve_and_plot(tmp_path):
    spec, actions, gen = _discrete()
    latent_spec = ActionSpec.multi_discrete([8, 8])
    codes = torch.stack([actions, torch.randint(0, 8, actions.shape, generator=gen)], 1)
    feats = latent_features(latent_spec, codes)
    curve = nearest_neighbour_curve(
        feats[:300], actions[:300], feats[300:], actions[300:], spec, ks=(1, 8, 64)
    )
    assert set(curve) == {1, 8, 64}
    assert curve[64] == 1.0  # the first code alone decides the action
    rand = latent_features(latent_spec, latent_spec.sample((400,), generator=gen))
    noise = nearest_neighbour_curve(rand[:300], actions[:300], rand[300:], actions[300:], spec)
    assert max(noise.values()) < 0.45
    path = tmp_path / "curve.png"
    plot_predictiveness({"latent": curve, "random": noise}, str(path))
    assert path.stat().st_size > 1000


def test_probe_rejects_mismatched_inputs():
    spec, actions, _ = _discrete(20)
    with pytest.raises(ValueError, match="train_features"):
        fit_probe(torch.zeros(19, 3), actions, torch.zeros(20, 3), actions, spec)
    with pytest.raises(ValueError, match="test_actions"):
        fit_probe(torch.zeros(20, 3), actions, torch.zeros(20, 3), actions + 5, spec)
    with pytest.raises(ValueError, match="kind"):
        fit_probe(torch.zeros(20, 3), actions, torch.zeros(20, 3), actions, spec, "svm")
