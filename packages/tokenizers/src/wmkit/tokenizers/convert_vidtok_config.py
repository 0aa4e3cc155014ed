"""Map a released VidTok YAML config (microsoft/VidTok; Tang et al. 2024, arXiv:2412.13061)
to :class:`~wmkit.tokenizers.vidtok.VidTokTokenizer` arguments (:func:`vidtok_config`), the
first half of ``wmkit convert vidtok`` (:mod:`~wmkit.tokenizers.convert_vidtok` maps the
tensors).

The config's ``model`` section names the generation (``model_3dcausal`` for v1.0,
``model_3dcausal_v1_1`` for v1.1), the architecture and the regularizer (KL or FSQ); what
wmkit's network cannot express (non-causal models, FSQ with a projection, other padding
modes, GroupNorm widths that are not multiples of 32) raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Any

from wmkit.tokenizers.vidtok_layout import VidTokLayout

__all__ = ["vidtok_config"]


def _model_section(config: dict[str, Any], source: str) -> dict[str, Any]:
    model = config.get("model", config)
    if not isinstance(model, dict) or "params" not in model:
        raise ValueError(f"{source}: expected a VidTok config with model.params")
    return model


def _resolve(params: Any, encoder_params: dict[str, Any]) -> dict[str, Any]:
    # Released configs write the decoder's params as the OmegaConf reference
    # ``${model.params.encoder_config.params}``; yaml.safe_load leaves it a string.
    if isinstance(params, str) and params.strip().startswith("${"):
        if params.strip() != "${model.params.encoder_config.params}":
            raise ValueError(f"unsupported OmegaConf reference in decoder params: {params}")
        return encoder_params
    if not isinstance(params, dict):
        raise ValueError(f"decoder_config.params must be a mapping; got {params!r}")
    return params


def vidtok_config(config: dict[str, Any], source: str = "config") -> tuple[dict[str, Any], str]:
    """Map a VidTok YAML config (parsed; the ``model`` section is read) to
    ``VidTokTokenizer`` arguments and the generation (``"1.0"`` or ``"1.1"``).

    Raises ``ValueError`` naming the field for a model this converter does not express
    (non-causal models, FSQ with a projection, other padding modes).
    """
    model = _model_section(config, source)
    p = model["params"]
    enc_cfg, dec_cfg = p.get("encoder_config", {}), p.get("decoder_config", {})
    enc_target, dec_target = str(enc_cfg.get("target", "")), str(dec_cfg.get("target", ""))
    if "model_3dcausal" not in enc_target or "model_3dcausal" not in dec_target:
        raise ValueError(
            f"{source}: only causal VidTok models convert (encoder/decoder targets in "
            f"vidtok.modules.model_3dcausal[_v1_1]); got {enc_target!r}, {dec_target!r}"
        )
    generation = "1.1" if enc_target.split(".")[-2].endswith("_v1_1") else "1.0"
    enc = enc_cfg.get("params", {})
    dec = _resolve(dec_cfg.get("params", {}), enc)
    n = len(enc["ch_mult"])
    factor = int(enc.get("time_downsample_factor", 4))
    spatial_ds = [int(i) for i in enc.get("spatial_ds") or range(n - 1)]
    spatial_us = [int(i) for i in dec.get("spatial_us") or range(1, n)]
    norm_type = _checked_norm(enc, dec, spatial_ds, spatial_us, source)
    kwargs: dict[str, Any] = {
        "size": "base",
        "spatial_compression": 2 ** len(spatial_ds),
        "temporal_compression": factor,
        "in_channels": int(enc.get("in_channels", 3)),
        "channels": int(enc["ch"]),
        "multipliers": [int(m) for m in enc["ch_mult"]],
        "blocks": int(enc["num_res_blocks"]),
        "attention": True,
        "layout": VidTokLayout(
            norm="layer" if norm_type == "layernorm" else "group",
            encoder_spatial_levels=spatial_ds,
            decoder_spatial_levels=spatial_us,
            encoder_temporal_levels=[int(i) for i in enc.get("tempo_ds") or [n - 2, n - 3]],
            decoder_temporal_levels=[int(i) for i in dec.get("tempo_us") or [1, 2]],
            time_padding="first_frame" if generation == "1.1" else "zeros",
            temporal_upsample=dec.get("interpolation_mode", "nearest")
            if generation == "1.1"
            else "nearest",
        ),
        **_regularizer(p.get("regularizer_config", {}), enc, source),
    }
    layout = kwargs["layout"]
    try:
        layout.resolve(len(spatial_ds), factor.bit_length() - 1, n)
    except ValueError as e:
        raise ValueError(
            f"{source}: spatial_ds/us {spatial_ds}/{spatial_us}, tempo_ds/us "
            f"{layout.encoder_temporal_levels}/{layout.decoder_temporal_levels} do not fit "
            f"time_downsample_factor={factor} with {n} levels: {e}"
        ) from e
    return kwargs, generation


def _checked_norm(
    enc: dict[str, Any],
    dec: dict[str, Any],
    spatial_ds: list[int],
    spatial_us: list[int],
    source: str,
) -> str:
    """The encoder's ``norm_type``, after checking the encoder / decoder params that wmkit's
    VidTok cannot express otherwise (raises ``ValueError`` naming the field)."""
    if len(spatial_ds) != len(spatial_us):
        raise ValueError(f"{source}: spatial_ds {spatial_ds} and spatial_us {spatial_us} differ")
    if enc.get("init_pad_mode", "replicate") != "replicate":
        raise ValueError(f"{source}: init_pad_mode={enc['init_pad_mode']!r}; expected replicate")
    norm_type = enc.get("norm_type", "groupnorm")
    if norm_type not in ("layernorm", "groupnorm"):
        raise ValueError(f"{source}: norm_type={norm_type!r}; expected layernorm or groupnorm")
    if norm_type == "groupnorm" and any(enc["ch"] * m % 32 for m in enc["ch_mult"]):
        raise ValueError(f"{source}: groupnorm needs every width to be a multiple of 32")
    if enc.get("in_channels", 3) != dec.get("out_ch", 3):
        raise ValueError(f"{source}: in_channels and out_ch differ")
    return norm_type


def _regularizer(reg: dict[str, Any], enc: dict[str, Any], source: str) -> dict[str, Any]:
    """``VidTokTokenizer`` arguments of the config's ``regularizer_config`` (KL or FSQ)."""
    reg_target = str(reg.get("target", ""))
    z = int(enc["z_channels"])
    if reg_target.endswith("DiagonalGaussianRegularizer"):
        if not enc.get("double_z", True):
            raise ValueError(f"{source}: a KL model needs double_z: true")
        return {"regularizer": "kl", "latent_channels": z}
    if reg_target.endswith("FSQRegularizer"):
        levels = [int(v) for v in reg.get("params", {}).get("levels", [])]
        if len(levels) != z or enc.get("double_z", False):
            raise ValueError(
                f"{source}: FSQ with {len(levels)} levels on z_channels={z} needs a projection, "
                "which wmkit's FSQ does not have"
            )
        return {"regularizer": "fsq", "fsq_levels": levels}
    raise ValueError(f"{source}: unknown regularizer target {reg_target!r}")
