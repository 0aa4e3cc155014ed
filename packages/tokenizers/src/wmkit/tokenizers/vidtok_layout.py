"""``VidTokLayout``: the component choices that tell VidTok-style tokenizers apart.

VidTok (Tang et al. 2024, arXiv:2412.13061, §3.1) fixes the blocks; its released models
differ in where they resample space and time (``spatial_ds``/``spatial_us``,
``tempo_ds``/``tempo_us`` in their configs), their normalisation and, between the two
released generations, how the causal past is padded and how time is upsampled (v1.0: zeros
and repeated frames; v1.1: copies of the first frame and trilinear interpolation, which
looks one latent frame ahead). wmkit's defaults (GroupNorm, zero padding, nearest
upsampling, resampling at the deepest levels) are its own and stay the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from wmkit.tokenizers.blocks import NormKind
from wmkit.tokenizers.causal_conv import PastPadding

__all__ = ["ResolvedLevels", "VidTokLayout"]


@dataclass(frozen=True)
class ResolvedLevels:
    """The resolution levels of one model: how many, and which are followed by a 2× spatial
    (and among those a 2× temporal) down-/up-sampling in the encoder and the decoder."""

    count: int
    encoder_spatial: list[int]
    decoder_spatial: list[int]
    encoder_temporal: list[int]
    decoder_temporal: list[int]


@dataclass
class VidTokLayout:
    """Layout choices of a ``VidTokTokenizer`` (JSON-serialisable; ``None`` = default).

    Args:
        norm: ``"group"`` (GroupNorm per frame) or ``"layer"`` (LayerNorm over channels, as
            in the released VidTok models).
        encoder_spatial_levels: resolution levels (0 = full resolution) followed by a 2×
            spatial downsampling; default ``0 .. log2 s - 1``. When given, the model has
            ``len(multipliers)`` levels (VidTok: ``spatial_ds``).
        decoder_spatial_levels: levels followed by a 2× spatial upsampling; default
            ``1 .. log2 s`` (VidTok: ``spatial_us``).
        encoder_temporal_levels: spatial downsampling levels that also halve time; default
            the deepest ``log2 t`` (VidTok: ``tempo_ds``, default ``[n-2, n-3]``).
        decoder_temporal_levels: spatial upsampling levels that also double time; default
            the deepest ``log2 t`` (VidTok: ``tempo_us``, default ``[1, 2]``).
        time_padding: the first chunk's causal past: ``"zeros"`` (VidTok v1.0) or copies of
            the ``"first_frame"`` (VidTok v1.1).
        temporal_upsample: ``"nearest"`` (exactly causal; VidTok v1.0) or ``"trilinear"``
            (VidTok v1.1: looks one latent frame ahead, so streaming decode overlaps chunks).
    """

    norm: NormKind = "group"
    encoder_spatial_levels: list[int] | None = None
    decoder_spatial_levels: list[int] | None = None
    encoder_temporal_levels: list[int] | None = None
    decoder_temporal_levels: list[int] | None = None
    time_padding: PastPadding = "zeros"
    temporal_upsample: Literal["nearest", "trilinear"] = "nearest"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("norm", ("group", "layer")),
            ("time_padding", ("zeros", "first_frame")),
            ("temporal_upsample", ("nearest", "trilinear")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")

    def resolve(
        self, spatial_levels: int, temporal_levels: int, multipliers: int
    ) -> ResolvedLevels:
        """The levels for ``log2 s = spatial_levels`` and ``log2 t = temporal_levels`` with
        ``multipliers`` given channel multipliers; raises ``ValueError`` naming the field."""
        n_s, n_t = spatial_levels, temporal_levels
        custom = self.encoder_spatial_levels is not None or self.decoder_spatial_levels is not None
        count = multipliers if custom else n_s + 1
        enc_s = self._levels("encoder_spatial_levels", range(n_s), range(count - 1), n_s)
        dec_s = self._levels("decoder_spatial_levels", range(1, n_s + 1), range(1, count), n_s)
        enc_t = self._levels("encoder_temporal_levels", sorted(enc_s)[n_s - n_t :], enc_s, n_t)
        dec_t = self._levels("decoder_temporal_levels", sorted(dec_s)[n_s - n_t :], dec_s, n_t)
        return ResolvedLevels(count, enc_s, dec_s, enc_t, dec_t)

    def _levels(
        self, name: str, default: Iterable[int], allowed: Iterable[int], count: int
    ) -> list[int]:
        """Field ``name`` (``None``: ``default``) checked to be ``count`` distinct levels
        among ``allowed``."""
        given = getattr(self, name)
        levels = list(default) if given is None else [int(i) for i in given]
        allowed = list(allowed)
        if len(set(levels)) != count or not set(levels) <= set(allowed):
            factor = "temporal_compression" if "temporal" in name else "spatial_compression"
            raise ValueError(
                f"{name} must be {count} distinct levels (log2 of {factor}) among {allowed}; "
                f"got {given}"
            )
        return levels
