"""The decoding strategies of ``ARWorldModel`` and the factory that picks one from the
model's flat arguments (``decoding``, ``cross_frame``, ...)."""

from __future__ import annotations

from typing import Literal

from wmkit.ar_world.cross_frame_decoding import CrossFrameDecoder
from wmkit.ar_world.diagonal_decoding import DiagonalDecoder
from wmkit.ar_world.raster_decoding import RasterDecoder
from wmkit.ar_world.token_decoder import TokenDecoder

__all__ = ["CrossFrameDecoder", "DiagonalDecoder", "RasterDecoder", "TokenDecoder", "make_decoder"]


def make_decoder(
    decoding: Literal["raster", "diagonal"] = "raster",
    window: int = 4,
    offset: int = 1,
    cross_frame: bool = False,
    **kwargs,
) -> TokenDecoder:
    """``RasterDecoder``, ``DiagonalDecoder`` or ``CrossFrameDecoder`` from
    ``ARWorldModel``'s arguments; ``kwargs`` as ``TokenDecoder``."""
    if decoding not in ("raster", "diagonal"):
        raise ValueError(f"decoding must be 'raster' or 'diagonal'; got {decoding!r}")
    if decoding == "diagonal" and not kwargs.get("use_cache", True):
        raise ValueError("decoding='diagonal' needs use_cache=True (tokens arrive out of order)")
    if cross_frame and decoding != "diagonal":
        raise ValueError(
            f"cross_frame=True needs decoding='diagonal' (with use_cache=True); got "
            f"decoding={decoding!r}"
        )
    if window < 1 or offset < 1:
        raise ValueError(f"window and offset must be >= 1; got {window}, {offset}")
    if decoding == "raster":
        return RasterDecoder(**kwargs)
    return (CrossFrameDecoder if cross_frame else DiagonalDecoder)(window, offset, **kwargs)
