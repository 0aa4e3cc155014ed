"""Denoising networks as components: built from ``{"class_path", "init_args"}``.

A world model's network is any ``nn.Module`` with ``forward(x [B, T, c', h, w], timesteps
[B, T], cond [B, T, cond_dim])`` → ``[B, T, c, h, w]``, strictly causal over time, and a
``cond_dim`` attribute; a config names it by ``class_path`` (a class, or a function returning
the network) with its ``init_args``, so a new network is a new class and a line of YAML.
The package's own: :class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` and the causalized
diffusers networks (:func:`causal_diffusers_network`, Vid2World's causalization).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from wmkit.core.components import build_component
from wmkit.diffusion_world.causal_layers import TemporalConvRule
from wmkit.diffusion_world.causalize import SVD_UNET_SIZES, causalize, load_diffusers_network
from wmkit.diffusion_world.dit import DIT_SIZES
from wmkit.diffusion_world.unet3d import UNET3D_SIZES
from wmkit.diffusion_world.wan import WAN_SIZES

__all__ = [
    "DIFFUSERS_NETWORKS",
    "build_network",
    "causal_diffusers_network",
    "check_network",
    "default_network_spec",
    "network_spec",
    "saved_network_spec",
]

#: the diffusers video networks :func:`causal_diffusers_network` causalizes, by short name
DIFFUSERS_NETWORKS = {
    "svd_unet": "UNetSpatioTemporalConditionModel",
    "unet3d": "UNet3DConditionModel",
    "wan": "WanTransformer3DModel",
}
_SIZES = {"svd_unet": SVD_UNET_SIZES, "unet3d": UNET3D_SIZES, "wan": WAN_SIZES}


def build_network(spec: dict[str, Any] | nn.Module) -> nn.Module:
    """The network of ``spec = {"class_path": "pkg.module.Name", "init_args": {...}}``."""
    return build_component(spec, nn.Module, "network")


def causal_diffusers_network(
    model_class: str,
    size: str | None = None,
    config: dict[str, Any] | None = None,
    pretrained: str | None = None,
    temporal_conv: TemporalConvRule = "extrapolative",
) -> nn.Module:
    """A diffusers video network made strictly causal (:func:`~wmkit.diffusion_world.causalize.
    causalize`, Vid2World).

    Args:
        model_class: ``UNetSpatioTemporalConditionModel``, ``UNet3DConditionModel`` or
            ``WanTransformer3DModel``.
        size: a named size of that class (``SVD_UNET_SIZES`` / ``UNET3D_SIZES`` /
            ``WAN_SIZES``), which ``config`` overrides.
        config: the diffusers config (``in_channels`` / ``out_channels``: the world model's
            ``channels``).
        pretrained: local diffusers directory of a pretrained network of that class (for Wan,
            a pipeline's ``transformer/``), loaded instead of ``size`` / ``config``.
        temporal_conv: the UNets' temporal-conv weight transfer (``shift``, ``masked``,
            ``extrapolative``).
    """
    import diffusers

    names = {v: k for k, v in DIFFUSERS_NETWORKS.items()}
    if model_class not in names:
        raise ValueError(f"model_class must be one of {tuple(names)}; got {model_class!r}")
    if pretrained is not None:
        base = load_diffusers_network(pretrained, expected=model_class)
    else:
        sizes = _SIZES[names[model_class]]
        if size is not None and size not in sizes:
            raise ValueError(f"size must be one of {tuple(sizes)} for {model_class}; got {size!r}")
        base = getattr(diffusers, model_class)(**{**sizes.get(size, {}), **(config or {})})
    return causalize(base, temporal_conv)


def network_spec(
    network: str,
    size: str,
    kwargs: dict[str, Any] | None,
    pretrained: str | None,
    temporal_conv: TemporalConvRule,
    channels: int,
    image_size: int,
    residual: bool,
) -> dict[str, Any]:
    """The component config of a network named the 0.1.x way (``network="dit"``, ``size``,
    ``network_kwargs``, ...), as :func:`build_network` takes it."""
    if network == "dit":
        if size not in DIT_SIZES:
            raise ValueError(f"size must be one of {tuple(DIT_SIZES)} for dit; got {size!r}")
        if pretrained is not None:
            raise ValueError(
                "pretrained_network is for the diffusers networks ('svd_unet', 'unet3d', 'wan')"
            )
        args = {**DIT_SIZES[size], "patch_size": 2, **(kwargs or {})}
        extra = channels if residual else 0  # the previous frame, concatenated
        init = {"in_channels": channels + extra, "image_size": image_size, "out_channels": channels}
        return {"class_path": "wmkit.diffusion_world.dit.SpatioTemporalDiT",
                "init_args": {**init, **args}}  # fmt: skip
    if network not in DIFFUSERS_NETWORKS:
        raise ValueError(f"network must be 'dit', 'svd_unet', 'unet3d' or 'wan'; got {network!r}")
    config = None
    if pretrained is None:
        sizes = _SIZES[network]
        if size not in sizes:
            raise ValueError(f"size must be one of {tuple(sizes)} for {network}; got {size!r}")
        config = {"in_channels": channels, "out_channels": channels, **(kwargs or {})}
    return {
        "class_path": "wmkit.diffusion_world.networks.causal_diffusers_network",
        "init_args": {"model_class": DIFFUSERS_NETWORKS[network], "size": size, "config": config,
                      "pretrained": pretrained, "temporal_conv": temporal_conv},
    }  # fmt: skip


def default_network_spec(channels: int, image_size: int, residual: bool) -> dict[str, Any]:
    """The tiny :class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` for ``channels`` x
    ``image_size``² frames (``residual``: the previous frame as extra input channels)."""
    init = {"in_channels": channels * (2 if residual else 1), "out_channels": channels}
    return {"class_path": "wmkit.diffusion_world.dit.SpatioTemporalDiT",
            "init_args": {**init, "image_size": image_size}}  # fmt: skip


def check_network(network: nn.Module, channels: int, cuda_graphs: bool) -> None:
    """What a world model needs of its network: ``cond_dim``, ``channels`` out (causalized
    diffusers networks say), and ``supports_cuda_graphs`` where ``cuda_graphs`` is asked."""
    if not hasattr(network, "cond_dim"):
        raise ValueError(
            f"the network {type(network).__name__} has no cond_dim (the width of its "
            "per-frame conditions)"
        )
    base = getattr(network, "diffusers_model", None)
    if base is not None and base.config.out_channels != channels:
        raise ValueError(
            f"the {type(base).__name__} network predicts {base.config.out_channels} channels "
            f"but channels={channels}"
        )
    if cuda_graphs and not getattr(network, "supports_cuda_graphs", False):
        raise ValueError(
            f"cuda_graphs=True needs a network that supports them (the DiT); got "
            f"{type(network).__name__}"
        )


def saved_network_spec(spec: dict[str, Any], network: nn.Module) -> dict[str, Any]:
    """``spec`` as ``save_pretrained`` records it: a causalized diffusers network loaded from
    a ``pretrained`` directory is recorded by its architecture (``config``; its weights are
    in ``model.safetensors``), so the saved model no longer needs the directory."""
    args = spec.get("init_args", {})
    base = getattr(network, "diffusers_model", None)
    if base is None or args.get("pretrained") is None:
        return spec
    config = {k: v for k, v in base.config.items() if k[0] != "_"}
    return {**spec, "init_args": {**args, "pretrained": None, "size": None, "config": config}}
