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

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents
from wmkit.core.video import check_video
from wmkit.tokenizers.causal_conv import is_streaming, set_past_padding
from wmkit.tokenizers.fsq import FSQQuantizer
from wmkit.tokenizers.kl import GaussianRegularizer
from wmkit.tokenizers.vidtok_backbone import VidTokDecoder, VidTokEncoder
from wmkit.tokenizers.vidtok_layout import VidTokLayout
from wmkit.tokenizers.vidtok_streaming import VidTokStream, VidTokStreamingMixin

__all__ = [
    "VIDTOK_SIZES",
    "TokenizerOutput",
    "VidTokDecoder",
    "VidTokEncoder",
    "VidTokStream",
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


def _compression_levels(spatial: int, temporal: int, temporal_mixing: bool) -> tuple[int, int]:
    """Validated ``(log2 spatial_compression, log2 temporal_compression)``."""
    n_s = _log2(spatial, "spatial_compression")
    n_t = _log2(temporal, "temporal_compression")
    if n_t > n_s:
        raise ValueError(
            f"temporal_compression ({temporal}) must be <= spatial_compression "
            f"({spatial}): temporal downsampling rides on the spatial levels"
        )
    if not temporal_mixing and temporal != 1:
        raise ValueError(
            f"temporal_mixing=False (per-frame) needs temporal_compression=1; got {temporal}"
        )
    return n_s, n_t


def _size_config(size: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The named size's architecture with the arguments that are not ``None`` put over it."""
    if size not in VIDTOK_SIZES:
        raise ValueError(f"size must be one of {sorted(VIDTOK_SIZES)}; got {size!r}")
    return {**VIDTOK_SIZES[size], **{k: v for k, v in overrides.items() if v is not None}}


def _as_layout(layout: VidTokLayout | dict | None) -> VidTokLayout:
    """``layout`` as given, from its ``config.json`` dict, or wmkit's default."""
    layout = VidTokLayout() if layout is None else layout
    if isinstance(layout, dict):  # as written in config.json
        layout = VidTokLayout(**layout)
    if not isinstance(layout, VidTokLayout):
        raise TypeError(f"layout must be a VidTokLayout; got {type(layout).__name__}")
    return layout


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


class VidTokTokenizer(VidTokStreamingMixin, nn.Module, PretrainedMixin):
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
        if regularizer not in ("kl", "fsq"):
            raise ValueError(f"regularizer must be 'kl' or 'fsq'; got {regularizer!r}")
        n_s, n_t = _compression_levels(spatial_compression, temporal_compression, temporal_mixing)
        overrides = {"channels": channels, "multipliers": multipliers, "blocks": blocks}
        cfg = _size_config(size, {**overrides, "attention": attention})
        self._kind: Literal["discrete", "continuous"] = (
            "discrete" if regularizer == "fsq" else "continuous"
        )
        self.s, self.t = spatial_compression, temporal_compression
        self.in_channels = in_channels
        enc_out = self._build_regularizer(
            regularizer, latent_channels, fsq_levels, fsq_entropy_weight
        )
        layout = _as_layout(layout)
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

    def _build_regularizer(
        self,
        regularizer: str,
        latent_channels: int,
        fsq_levels: list[int] | None,
        fsq_entropy_weight: float,
    ) -> int:
        """Set ``quantizer`` / ``gaussian`` and ``code_dim``; → the encoder's output channels."""
        if regularizer == "fsq":
            self.quantizer: FSQQuantizer | None = FSQQuantizer(
                list(fsq_levels or [8, 8, 8, 6, 5]), entropy_weight=fsq_entropy_weight
            )
            self.gaussian: GaussianRegularizer | None = None
            self.code_dim = self.quantizer.dim
            return self.code_dim
        if latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1; got {latent_channels}")
        self.quantizer, self.gaussian = None, GaussianRegularizer()
        self.code_dim = latent_channels
        return 2 * latent_channels

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

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
