"""VidTok-style causal 3D video tokenizer (Tang et al. 2024, arXiv:2412.13061; microsoft/VidTok).

The first frame is encoded on its own and every later group of ``t`` frames into one latent
frame (``T = 1 + k·t`` frames → ``1 + k`` latents): the encoder repeats the first frame
``t - 1`` times in front, so groups align with the temporal downsampling, and the decoder
drops those ``t - 1`` frames again. Latent ``j`` depends only on frames ``<= j·t`` and
decoded frame ``f`` only on latents ``<= ceil(f / t)``, so both directions stream.

Backbone (VidTok §3.1): causal 3D conv in/out, per-level 2D spatial resnet blocks each
followed by a 1D causal temporal block, separate spatial (2D, every level) and temporal
(AlphaBlender, deepest ``log2 t`` levels) resampling, and a causal 3D bottleneck with
per-frame attention. Regularizer: KL (continuous ``C`` channels) or FSQ (discrete ids).

Both released generations are expressible, so their checkpoints load
(:mod:`wmkit.tokenizers.convert_vidtok`): v1.0 pads the causal past with zeros and upsamples
time by repeating frames; v1.1 pads it with copies of the first frame and upsamples time
trilinearly, which looks one latent frame ahead. Both use LayerNorm over channels and
resample at the levels their config names; ``layout``
(:class:`~wmkit.tokenizers.vidtok_layout.VidTokLayout`) holds these choices, and wmkit's
defaults are its own.

Where we differ from the paper: attention uses ``scaled_dot_product_attention`` on one
stacked linear q/k/v projection instead of three 1×1×1 causal convs (same function); the FSQ
entropy term is factorised per dimension (see :mod:`wmkit.tokenizers.fsq`); ``encode``
returns the KL posterior mode unless asked to sample; ``decode`` returns ``1 + t·(T' - 1)``
frames (v1.1's decoder returns ``t·T'`` and its callers keep the last ``T``);
``temporal_mixing=False`` gives a true per-frame 2D model (used as the baseline in
``tools/bench_tokenizer.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents
from wmkit.core.video import check_video
from wmkit.tokenizers.blocks import (
    CausalResBlock3d,
    FrameAttention,
    FrameNorm,
    NormKind,
    SpatialDownsample,
    SpatialResBlock,
    SpatialUpsample,
    TemporalDownsample,
    TemporalResBlock,
    TemporalUpsample,
)
from wmkit.tokenizers.causal_conv import (
    CausalConv3d,
    StreamingModule,
    is_streaming,
    set_past_padding,
    streaming,
)
from wmkit.tokenizers.fsq import FSQQuantizer
from wmkit.tokenizers.kl import GaussianRegularizer
from wmkit.tokenizers.vidtok_layout import VidTokLayout

__all__ = [
    "VIDTOK_SIZES",
    "TokenizerOutput",
    "VidTokDecoder",
    "VidTokEncoder",
    "VidTokTokenizer",
]

#: Named sizes: base channels, channel multipliers per resolution level (for 8× spatial
#: compression; extended with the last value / truncated for other factors), resnet blocks
#: per level and bottleneck attention. ``base`` is the published VidTok scale.
VIDTOK_SIZES: dict[str, dict] = {
    "tiny": {"channels": 4, "multipliers": [1, 2, 2, 2], "blocks": 1, "attention": False},
    "small": {"channels": 32, "multipliers": [1, 2, 2, 4], "blocks": 1, "attention": True},
    "base": {"channels": 128, "multipliers": [1, 2, 4, 4], "blocks": 2, "attention": True},
}


def _log2(n: int, name: str) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{name} must be a power of two (1, 2, 4, 8, 16); got {n}")
    return n.bit_length() - 1


def _multipliers(base: list[int], levels: int) -> list[int]:
    return [base[min(i, len(base) - 1)] for i in range(levels)]


@dataclass
class TokenizerOutput:
    """What :meth:`VidTokTokenizer.forward` returns for training.

    Attributes:
        reconstruction: ``[B, T, C, H, W]``, not clamped (losses see the raw output).
        latents: what the decoder consumed, ``[B, T', C, h, w]`` (a KL sample or FSQ codes).
        ids: FSQ token ids ``long [B, T', h, w]``; ``None`` for KL.
        reg_loss: the regularizer's loss before its weight in the training loss (KL) or
            with its own weight (FSQ entropy).
        logs: scalars worth logging.
    """

    reconstruction: Tensor
    latents: Tensor
    ids: Tensor | None
    reg_loss: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


class VidTokEncoder(nn.Module):
    """``[B, C, T, H, W]`` (T a multiple of ``t`` after first-frame padding) →
    ``[B, out_channels, T / t, H / s, W / s]``.

    ``spatial_levels`` are the resolution levels (0 = full resolution) followed by a 2×
    spatial downsampling, ``temporal_levels`` those of them that also halve time.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        multipliers: list[int],
        blocks: int,
        spatial_levels: list[int],
        temporal_levels: list[int],
        attention: bool,
        temporal_mixing: bool,
        norm: NormKind = "group",
    ) -> None:
        super().__init__()
        kt = 3 if temporal_mixing else 1
        widths = [channels * m for m in multipliers]
        self.conv_in = CausalConv3d(in_channels, widths[0], (kt, 3, 3))
        self.levels = nn.ModuleList()
        width = widths[0]
        for i, w in enumerate(widths):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(blocks):
                level.blocks.append(SpatialResBlock(width, w, norm))
                level.blocks.append(
                    TemporalResBlock(w, norm=norm) if temporal_mixing else nn.Identity()
                )
                width = w
            if i in spatial_levels:
                level.down = SpatialDownsample(width)
                level.time_down = (
                    TemporalDownsample(width) if i in temporal_levels else nn.Identity()
                )
            self.levels.append(level)
        self.mid = nn.Sequential(
            CausalResBlock3d(width, width, kt, norm),
            FrameAttention(width, norm) if attention else nn.Identity(),
            CausalResBlock3d(width, width, kt, norm),
        )
        self.norm_out = FrameNorm(width, norm)
        self.conv_out = CausalConv3d(width, out_channels, (kt, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)  # [B, C0, T, H, W]
        for level in self.levels:
            for block in level.blocks:
                h = block(h)
            if hasattr(level, "down"):
                h = level.time_down(level.down(h))  # [B, C, T (/2), H/2, W/2]
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, out, T/t, h, w]


class VidTokDecoder(nn.Module):
    """``[B, in_channels, T', h, w]`` → ``[B, out_channels, T'·t, h·s, w·s]`` (mirror of the
    encoder, one more resnet block per level as in VidTok).

    ``spatial_levels`` are the resolution levels (``levels[k]`` is level ``n - 1 - k``)
    followed by a 2× spatial upsampling, ``temporal_levels`` those of them that also double
    time; ``temporal_upsample`` picks its interpolation
    (:class:`~wmkit.tokenizers.blocks.TemporalUpsample`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        multipliers: list[int],
        blocks: int,
        spatial_levels: list[int],
        temporal_levels: list[int],
        attention: bool,
        temporal_mixing: bool,
        norm: NormKind = "group",
        temporal_upsample: Literal["nearest", "trilinear"] = "nearest",
    ) -> None:
        super().__init__()
        kt = 3 if temporal_mixing else 1
        widths = [channels * m for m in multipliers]
        n_levels = len(widths)
        width = widths[-1]
        self.conv_in = CausalConv3d(in_channels, width, (kt, 3, 3))
        self.mid = nn.Sequential(
            CausalResBlock3d(width, width, kt, norm),
            FrameAttention(width, norm) if attention else nn.Identity(),
            CausalResBlock3d(width, width, kt, norm),
        )
        self.levels = nn.ModuleList()
        first_frames = 1
        for i in reversed(range(n_levels)):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(blocks + 1):
                level.blocks.append(SpatialResBlock(width, widths[i], norm))
                width = widths[i]
                level.blocks.append(
                    TemporalResBlock(width, norm=norm) if temporal_mixing else nn.Identity()
                )
            if i in spatial_levels:
                level.up = SpatialUpsample(width)
                level.time_up = nn.Identity()
                if i in temporal_levels:
                    level.time_up = TemporalUpsample(width, temporal_upsample, first_frames)
                    first_frames *= 2
            self.levels.append(level)
        self.norm_out = FrameNorm(width, norm)
        self.conv_out = CausalConv3d(width, out_channels, (kt, 3, 3))

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))  # [B, C, T', h, w]
        for level in self.levels:
            for block in level.blocks:
                h = block(h)
            if hasattr(level, "up"):
                h = level.time_up(level.up(h))  # [B, C, T' (·2), 2h, 2w]
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, out, T'·t, H, W]

    def set_cache_offset(self, latent_frames: int) -> None:
        """Keep the last ``latent_frames`` latent frames of each chunk out of every causal
        cache (each module's offset counts frames at its own frame rate), so a chunk can be
        fed with a look-ahead whose output is dropped; ``0`` switches this off."""
        rate = 1
        for part in (self.conv_in, self.mid):
            _offset(part, latent_frames * rate)
        for level in self.levels:
            _offset(level.blocks, latent_frames * rate)
            if isinstance(getattr(level, "time_up", None), TemporalUpsample):
                rate *= 2
                _offset(level.time_up, latent_frames * rate)
        _offset(self.conv_out, latent_frames * rate)


def _offset(module: nn.Module, frames: int) -> None:
    for m in module.modules():
        if isinstance(m, StreamingModule):
            m.cache_offset = frames


class VidTokTokenizer(nn.Module, PretrainedMixin):
    """Causal 3D video tokenizer with a KL (continuous) or FSQ (discrete) bottleneck.

    Satisfies :class:`wmkit.core.Tokenizer`. Videos are ``float [B, T, C, H, W]`` in
    [-1, 1] with ``T = 1 + k·temporal_compression`` and ``H, W`` multiples of
    ``spatial_compression``. ``encode`` returns the posterior mean (KL, ``[B, T', C, h, w]``)
    or token ids (FSQ, ``long [B, T', h, w]``); ``decode`` accepts either, or FSQ codes.

    Args:
        size: named size from :data:`VIDTOK_SIZES` (``tiny``, ``small``, ``base``).
        regularizer: ``"kl"`` (continuous) or ``"fsq"`` (discrete).
        latent_channels: KL latent channels (e.g. 4 or 16).
        fsq_levels: FSQ levels per latent dim (``[8, 8, 8, 6, 5]`` ≈ 15k ids, ``[8] * 6`` 262k).
        fsq_entropy_weight: weight of FSQ's factorised entropy term.
        spatial_compression: spatial factor ``s`` (power of two, e.g. 8 or 16).
        temporal_compression: temporal factor ``t`` (power of two ``<= s``, e.g. 1 or 4).
        temporal_mixing: ``False`` makes every layer per-frame (a 2D image tokenizer applied
            frame by frame; needs ``temporal_compression=1``).
        in_channels: video channels.
        channels: override the size's base width.
        multipliers: override the size's channel multipliers.
        blocks: override the size's resnet blocks per level.
        attention: override the size's bottleneck attention.
        layout: where space and time are resampled, the norm, the causal padding and the
            temporal upsampling (:class:`~wmkit.tokenizers.vidtok_layout.VidTokLayout`;
            or its dict, as in ``config.json``; default wmkit's own; the converter sets the
            released models').
    """

    def __init__(
        self,
        size: str = "tiny",
        regularizer: Literal["kl", "fsq"] = "kl",
        latent_channels: int = 4,
        fsq_levels: list[int] | None = None,
        fsq_entropy_weight: float = 0.0,
        spatial_compression: int = 8,
        temporal_compression: int = 4,
        temporal_mixing: bool = True,
        in_channels: int = 3,
        channels: int | None = None,
        multipliers: list[int] | None = None,
        blocks: int | None = None,
        attention: bool | None = None,
        layout: VidTokLayout | None = None,
    ) -> None:
        super().__init__()
        if size not in VIDTOK_SIZES:
            raise ValueError(f"size must be one of {sorted(VIDTOK_SIZES)}; got {size!r}")
        if regularizer not in ("kl", "fsq"):
            raise ValueError(f"regularizer must be 'kl' or 'fsq'; got {regularizer!r}")
        n_s = _log2(spatial_compression, "spatial_compression")
        n_t = _log2(temporal_compression, "temporal_compression")
        if n_t > n_s:
            raise ValueError(
                f"temporal_compression ({temporal_compression}) must be <= spatial_compression "
                f"({spatial_compression}): temporal downsampling rides on the spatial levels"
            )
        if not temporal_mixing and temporal_compression != 1:
            raise ValueError(
                "temporal_mixing=False (per-frame) needs temporal_compression=1; "
                f"got {temporal_compression}"
            )
        cfg = dict(VIDTOK_SIZES[size])
        for key, value in (
            ("channels", channels),
            ("multipliers", multipliers),
            ("blocks", blocks),
            ("attention", attention),
        ):
            if value is not None:
                cfg[key] = value
        self._kind: Literal["discrete", "continuous"] = (
            "discrete" if regularizer == "fsq" else "continuous"
        )
        self.s, self.t = spatial_compression, temporal_compression
        self.in_channels = in_channels
        if regularizer == "fsq":
            self.quantizer: FSQQuantizer | None = FSQQuantizer(
                list(fsq_levels or [8, 8, 8, 6, 5]), entropy_weight=fsq_entropy_weight
            )
            self.gaussian: GaussianRegularizer | None = None
            self.code_dim = self.quantizer.dim
            enc_out = self.code_dim
        else:
            if latent_channels < 1:
                raise ValueError(f"latent_channels must be >= 1; got {latent_channels}")
            self.quantizer, self.gaussian = None, GaussianRegularizer()
            self.code_dim = latent_channels
            enc_out = 2 * latent_channels
        layout = VidTokLayout() if layout is None else layout
        if isinstance(layout, dict):  # as written in config.json
            layout = VidTokLayout(**layout)
        if not isinstance(layout, VidTokLayout):
            raise TypeError(f"layout must be a VidTokLayout; got {type(layout).__name__}")
        lv = layout.resolve(n_s, n_t, len(cfg["multipliers"]))
        self.layout = layout
        self.temporal_upsample = layout.temporal_upsample
        arch = {
            "channels": cfg["channels"],
            "multipliers": _multipliers(list(cfg["multipliers"]), lv.count),
            "blocks": cfg["blocks"],
            "attention": cfg["attention"],
            "temporal_mixing": temporal_mixing,
            "norm": layout.norm,
        }
        self.encoder = VidTokEncoder(
            in_channels,
            enc_out,
            spatial_levels=lv.encoder_spatial,
            temporal_levels=lv.encoder_temporal,
            **arch,
        )
        self.decoder = VidTokDecoder(
            self.code_dim,
            in_channels,
            spatial_levels=lv.decoder_spatial,
            temporal_levels=lv.decoder_temporal,
            temporal_upsample=layout.temporal_upsample,
            **arch,
        )
        set_past_padding(self, layout.time_padding)

    # ------------------------------------------------------------------ protocol properties
    @property
    def kind(self) -> Literal["discrete", "continuous"]:
        return self._kind

    @property
    def vocab_size(self) -> int | None:
        return self.quantizer.vocab_size if self.quantizer is not None else None

    @property
    def latent_channels(self) -> int | None:
        return self.code_dim if self.quantizer is None else None

    @property
    def spatial_compression(self) -> int:
        return self.s

    @property
    def temporal_compression(self) -> int:
        return self.t

    def num_latent_frames(self, num_frames: int) -> int:
        """``1 + (T - 1) / t``; raises if ``T`` is not ``1 + k·t``."""
        if num_frames < 1 or (num_frames - 1) % self.t:
            raise ValueError(
                f"video must have 1 + k·{self.t} frames (1, {1 + self.t}, {1 + 2 * self.t}, ...) "
                f"for temporal_compression={self.t}; got T={num_frames}"
            )
        return 1 + (num_frames - 1) // self.t

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        t = self.num_latent_frames(num_frames)
        if height % self.s or width % self.s:
            raise ValueError(
                f"video height and width must be multiples of spatial_compression={self.s}; "
                f"got {height}x{width}"
            )
        hw = (height // self.s, width // self.s)
        return (t, *hw) if self._kind == "discrete" else (t, self.code_dim, *hw)

    # ------------------------------------------------------------------ internals
    def _check_input(self, video: Tensor, name: str = "video") -> None:
        check_video(video, name=name, channels=self.in_channels)
        _, t, _, h, w = video.shape
        self.tokens_shape(t, h, w)

    def _encode_moments(self, video: Tensor, first: bool = True) -> Tensor:
        """``[B, T, C, H, W]`` → encoder output ``[B, C', T', h, w]``. ``first`` chunks (and
        full passes) get the first frame repeated ``t - 1`` times in front."""
        x = rearrange(video, "b t c h w -> b c t h w")
        if first and self.t > 1:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.t - 1, -1, -1), x], dim=2)
        return self.encoder(x)

    def _decode_codes(self, z: Tensor, first: bool = True) -> Tensor:
        """Latents ``[B, C, T', h, w]`` → video ``[B, T, C, H, W]`` (not clamped)."""
        x = self.decoder(z)  # [B, C, T'·t, H, W]
        if first and self.t > 1:
            x = x[:, :, self.t - 1 :]
        return rearrange(x, "b c t h w -> b t c h w")

    def _latent_values(self, h: Tensor) -> Tensor:
        """Encoder output → what ``encode`` returns."""
        if self.quantizer is not None:
            return self.quantizer(h).ids  # [B, T', h, w]
        mean = self.gaussian(h, sample=False).mean  # type: ignore[misc]
        return rearrange(mean, "b c t h w -> b t c h w")

    def _to_codes(self, latents: Latents | Tensor) -> Tensor:
        """Validate ``decode``'s input → decoder input ``[B, C, T', h, w]``."""
        values = latents.values if isinstance(latents, Latents) else latents
        if not isinstance(values, Tensor):
            raise TypeError(f"latents must be Latents or a Tensor; got {type(values).__name__}")
        if self.quantizer is not None and not values.is_floating_point():
            if values.ndim != 4:
                raise ValueError(
                    f"token ids must be long [B, T', h, w]; got shape {tuple(values.shape)}"
                )
            return self.quantizer.ids_to_codes(values)  # [B, D, T', h, w]
        if not values.is_floating_point():
            raise TypeError(
                f"continuous latents must be float [B, T', C, h, w]; got {values.dtype}"
            )
        if values.ndim != 5 or values.shape[2] != self.code_dim:
            raise ValueError(
                f"latents must be [B, T', {self.code_dim}, h, w] (or long ids [B, T', h, w] for "
                f"FSQ); got shape {tuple(values.shape)}"
            )
        return rearrange(values, "b t c h w -> b c t h w")

    # ------------------------------------------------------------------ public API
    def forward(self, video: Tensor, sample_posterior: bool = True) -> TokenizerOutput:
        """Training pass: encode, regularize (KL sample or FSQ), decode."""
        self._check_input(video)
        h = self._encode_moments(video)
        if self.quantizer is not None:
            q = self.quantizer(h)
            z, ids, reg, logs = q.codes, q.ids, q.loss, dict(q.logs)
        else:
            g = self.gaussian(h, sample=sample_posterior)  # type: ignore[misc]
            z, ids, reg, logs = g.latents, None, g.kl, {"kl": g.kl.detach()}
        recon = self._decode_codes(z)
        return TokenizerOutput(
            reconstruction=recon,
            latents=rearrange(z, "b c t h w -> b t c h w"),
            ids=ids,
            reg_loss=reg,
            logs=logs,
        )

    def encode(self, video: Tensor, sample: bool = False) -> Latents:
        """``float [B, T, C, H, W]`` in [-1, 1] → ``Latents``: FSQ ids, or for KL the
        posterior mode (its mean), or a sample of the posterior when ``sample`` is set.

        VidTok's own ``encode`` samples the KL posterior unless told not to; wmkit returns
        the mode unless asked, so encoding is deterministic.
        """
        self._check_input(video)
        if is_streaming(self.encoder):
            raise RuntimeError("encode called while an encode_chunks stream is open")
        h = self._encode_moments(video)
        if sample and self.gaussian is not None:
            z = self.gaussian(h, sample=True).latents
            return Latents(values=rearrange(z, "b c t h w -> b t c h w"), kind=self._kind)
        return Latents(values=self._latent_values(h), kind=self._kind)

    def decode(self, latents: Latents | Tensor) -> Tensor:
        """``Latents`` or their values (KL latents, FSQ ids or codes) → video in [-1, 1]."""
        z = self._to_codes(latents)
        if is_streaming(self.decoder):
            raise RuntimeError("decode called while a decode_chunks stream is open")
        return self._decode_codes(z).clamp(-1, 1)

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """FSQ codes ``[B, T', D, h, w]`` → ids ``long [B, T', h, w]``."""
        if self.quantizer is None:
            raise ValueError("codes_to_ids needs regularizer='fsq'")
        return self.quantizer.codes_to_ids(rearrange(codes, "b t d h w -> b d t h w"))

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """FSQ ids ``long [B, T', h, w]`` → codes ``[B, T', D, h, w]``."""
        if self.quantizer is None:
            raise ValueError("ids_to_codes needs regularizer='fsq'")
        return rearrange(self.quantizer.ids_to_codes(ids), "b d t h w -> b t d h w")

    # ------------------------------------------------------------------ streaming
    def split_frames(self, video: Tensor, latents_per_chunk: int = 1) -> list[Tensor]:
        """Cut ``[B, T, C, H, W]`` into chunks for :meth:`encode_chunks`: the first holds
        ``1 + (n - 1)·t`` frames, the others ``n·t`` (the last may be shorter)."""
        n = self.t * latents_per_chunk
        first = 1 + (latents_per_chunk - 1) * self.t
        return [video[:, :first], *video[:, first:].split(n, dim=1)]

    @torch.no_grad()  # as a decorator it wraps each step: the caller's grad mode is untouched
    def encode_chunks(self, chunks: Iterable[Tensor]) -> Iterator[Latents]:
        """Encode a long video chunk by chunk (first chunk ``1 + k·t`` frames, the rest
        multiples of ``t``), yielding each chunk's ``Latents``. Concatenated along time they
        equal ``encode`` of the whole video; memory depends on the chunk size only."""
        with streaming(self.encoder):
            for i, chunk in enumerate(chunks):
                check_video(chunk, name=f"chunks[{i}]", channels=self.in_channels)
                n = chunk.shape[1]
                if (i == 0 and (n - 1) % self.t) or (i > 0 and (n == 0 or n % self.t)):
                    rule = "1 + k·t" if i == 0 else "a positive multiple of t"
                    raise ValueError(f"chunks[{i}] must have {rule} frames (t={self.t}); got {n}")
                h = self._encode_moments(chunk, first=i == 0)
                yield Latents(values=self._latent_values(h), kind=self._kind)

    @torch.no_grad()
    def decode_chunks(self, chunks: Iterable[Latents | Tensor]) -> Iterator[Tensor]:
        """Decode latents chunk by chunk (any number of latent frames per chunk), yielding
        the video of each chunk (``1 + t·(n - 1)`` frames for the first, ``t·n`` after).

        With ``temporal_upsample="nearest"`` the decoder is causal and the chunks
        concatenate to ``decode`` of all latents. With ``"trilinear"`` it looks one latent
        frame ahead, so this reproduces VidTok v1.1's long-video decode
        (``use_tiling``, ``use_overlap``): each chunk but the last is decoded together with
        the next chunk's first latent frame, whose ``t`` frames are dropped and kept out of
        the causal caches; a chunk's video is yielded once the next chunk has arrived. The
        result depends on where the chunks are cut (VidTok cuts after the first latent, then
        every ``16 / t``) and differs slightly from the whole-clip ``decode``.
        """
        overlap = self.temporal_upsample == "trilinear"
        with streaming(self.decoder):
            self.decoder.set_cache_offset(1 if overlap else 0)
            try:
                pending: Tensor | None = None
                for i, chunk in enumerate(chunks):
                    z = self._to_codes(chunk)
                    if not overlap:
                        yield self._decode_codes(z, first=i == 0).clamp(-1, 1)
                        continue
                    if pending is not None:
                        yield self._decode_overlapped(pending, z[:, :, :1], first=i == 1)
                    pending = z
                if pending is not None:
                    yield self._decode_overlapped(pending, None, first=i == 0)
            finally:
                self.decoder.set_cache_offset(0)

    def _decode_overlapped(self, z: Tensor, ahead: Tensor | None, first: bool) -> Tensor:
        """Decode ``z`` with one latent frame of look-ahead whose output is dropped."""
        if ahead is None:
            return self._decode_codes(z, first=first).clamp(-1, 1)
        x = self._decode_codes(torch.cat([z, ahead], dim=2), first=first)
        return x[:, : -self.t].clamp(-1, 1)

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
