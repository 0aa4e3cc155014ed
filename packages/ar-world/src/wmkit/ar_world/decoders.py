"""The decoding strategies of ``ARWorldModel``, in one import: the order in which a frame's
tokens are drawn (``RasterDecoder``, ``DiagonalDecoder``, ``CrossFrameDecoder``), each a
``TokenDecoder`` passed to the model as its ``decoder`` component. :func:`decoder_spec` names
one by its short name (``"raster"``, ``"diagonal"``, ``cross_frame``), as benchmarks and the
0.1.x flat arguments do, and :func:`make_decoder` builds it."""

from __future__ import annotations

from typing import Any

from wmkit.ar_world.cross_frame_decoding import CrossFrameDecoder
from wmkit.ar_world.diagonal_decoding import DiagonalDecoder
from wmkit.ar_world.raster_decoding import RasterDecoder
from wmkit.ar_world.token_decoder import TokenDecoder
from wmkit.core.components import build_component

__all__ = [
    "CrossFrameDecoder",
    "DiagonalDecoder",
    "RasterDecoder",
    "TokenDecoder",
    "decoder_spec",
    "make_decoder",
]

_PACKAGE = "wmkit.ar_world"


def decoder_spec(
    decoding: str = "raster",
    window: int = 4,
    offset: int = 1,
    cross_frame: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """The spec of ``RasterDecoder``, ``DiagonalDecoder`` or ``CrossFrameDecoder`` named the
    flat way; ``kwargs`` as ``TokenDecoder``."""
    if decoding not in ("raster", "diagonal"):
        raise ValueError(f"decoding must be 'raster' or 'diagonal'; got {decoding!r}")
    if cross_frame and decoding != "diagonal":
        raise ValueError(
            f"cross_frame=True needs decoding='diagonal' (with use_cache=True); got "
            f"decoding={decoding!r}"
        )
    if window < 1 or offset < 1:
        raise ValueError(f"window and offset must be >= 1; got {window}, {offset}")
    if decoding == "raster":
        return {"class_path": f"{_PACKAGE}.raster_decoding.RasterDecoder", "init_args": kwargs}
    name = (
        "cross_frame_decoding.CrossFrameDecoder"
        if cross_frame
        else "diagonal_decoding.DiagonalDecoder"
    )
    args = {"window": window, "offset": offset, **kwargs}
    return {"class_path": f"{_PACKAGE}.{name}", "init_args": args}


def make_decoder(
    decoding: str = "raster",
    window: int = 4,
    offset: int = 1,
    cross_frame: bool = False,
    **kwargs: Any,
) -> TokenDecoder:
    """The decoder :func:`decoder_spec` names, built."""
    spec = decoder_spec(decoding, window, offset, cross_frame, **kwargs)
    return build_component(spec, TokenDecoder, "decoder")
