"""The flat ``ARWorldModel`` arguments of wmkit-ar-world 0.1.x, mapped onto today's
components.

Until the model took its parts as components, it took a transformer ``size``, an
``action_mode``, a ``decoding`` name with ``window``/``offset``/``cross_frame`` and the
sampling and cache switches as flat keyword arguments, and ``save_pretrained`` wrote them
so. :func:`upgrade_flat_config` rewrites such a config (a ``config.json``, or keyword
arguments in that form) into ``transformer``, ``layout`` and ``decoder`` specs; missing flat
arguments take their old defaults, so the rebuilt model is the one the flat arguments built.
"""

from __future__ import annotations

from typing import Any

from wmkit.ar_world.decoders import decoder_spec
from wmkit.ar_world.sizes import transformer_spec

__all__ = [
    "FLAT_DEFAULTS",
    "is_flat_config",
    "upgrade_flat_config",
]

#: the flat arguments that moved into components, with their old defaults
FLAT_DEFAULTS: dict[str, Any] = {
    "size": "tiny",
    "gradient_checkpointing": False,
    "action_mode": "tokens",
    "context_frames": None,
    "refresh_keep": None,
    "decoding": "raster",
    "window": 4,
    "offset": 1,
    "cross_frame": False,
    "use_cache": True,
    "temperature": 1.0,
    "top_k": None,
    "top_p": 1.0,
    "cuda_graphs": False,
    "compile_decoding": False,
    "guidance_scale": 1.0,
}
_COMPONENTS = ("transformer", "layout", "decoder")


def is_flat_config(config: dict[str, Any]) -> bool:
    """Whether ``config`` holds any of the flat arguments."""
    return any(key in config for key in FLAT_DEFAULTS)


def upgrade_flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the flat arguments replaced by ``transformer``, ``layout`` and
    ``decoder`` specs (other keys, such as ``action_spec`` or ``_wmkit_class``, kept)."""
    if not is_flat_config(config):
        return dict(config)
    both = sorted(k for k in _COMPONENTS if k in config)
    if both:
        flat = sorted(k for k in FLAT_DEFAULTS if k in config)
        raise ValueError(
            f"give either the components {both} or the flat arguments {flat}, not both"
        )
    flat = {**FLAT_DEFAULTS, **config}
    out = {k: v for k, v in flat.items() if k not in FLAT_DEFAULTS}
    out["transformer"] = transformer_spec(flat["size"], flat["gradient_checkpointing"])
    out["layout"] = {
        "class_path": "wmkit.ar_world.token_layout.TokenLayout",
        "init_args": {"action_mode": flat["action_mode"], "context_frames": flat["context_frames"]},
    }
    sampling = ("use_cache", "temperature", "top_k", "top_p", "cuda_graphs", "guidance_scale",
                "refresh_keep", "compile_decoding")  # fmt: skip
    out["decoder"] = decoder_spec(
        flat["decoding"], flat["window"], flat["offset"], flat["cross_frame"],
        **{k: flat[k] for k in sampling},
    )  # fmt: skip
    return out
