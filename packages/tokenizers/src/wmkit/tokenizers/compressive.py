"""iVideoGPT-style compressive tokenizer (Wu et al. 2024, arXiv:2405.15223; thuml/iVideoGPT).

**Context frames** are tokenized independently by a per-frame VQGAN-like autoencoder with
``N = (H/s)·(W/s)`` tokens each. **Future frames** get only ``n = N / p²`` tokens each: a
second encoder cross-attends (at its deepest levels) to the context encoder's features,
its output is patchified ``p × p`` and quantized with a separate codebook; a second decoder
un-patchifies and cross-attends to the *context decoder's* features (so decoding needs only
the tokens). A future token therefore only has to carry what differs from the context
(iVideoGPT §3.1: decoupling context and dynamics).

``encode(video, context_frames=T0)`` or ``context_indices=(...)`` (any subset, e.g. a goal
frame first — iVideoGPT's goal conditioning reorders ``(o_T, o_1, ...)``) returns
``Latents(values=context ids [B, T0, h, w], future=future ids [B, T - T0, h', w'],
context_indices=...)``. Without either argument the configured ``context_frames`` is used;
its default ``None`` makes **every frame a context frame**, which is what the
``wmkit.core.Tokenizer`` contract needs (``decode(latents.values)`` must give back the whole
video, and a bare tensor cannot carry future tokens).

**Residual future frames** (``future_residual=True``, our addition,
:mod:`~wmkit.tokenizers.compressive_residual`): each future frame is decoded as the latest
context frame *in pixels* plus a change, so an untrained tokenizer copies the last frame and
future tokens only have to describe the change.

Where we differ from iVideoGPT: the backbone reuses this package's per-frame blocks
(``SpatialResBlock`` etc., GroupNorm per frame) instead of diffusers' ``Encoder``; codes come
from FSQ (default) or EMA/cosine/dead-code-reset VQ (vector-quantize-pytorch) instead of
plain VQ with ``beta=1``; cross-attention is restricted to the deepest
``cross_attention_levels`` resolutions (iVideoGPT's ``max_att_resolution``) and uses a fixed
2D position embedding; any number of context frames and non-prefix context sets are
supported (iVideoGPT's code fixes ``context_length``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents
from wmkit.tokenizers import compressive_residual as residual
from wmkit.tokenizers.compressive_contract import CompressiveContract, FrameTokens
from wmkit.tokenizers.compressive_frames import FrameDecoder, FrameEncoder
from wmkit.tokenizers.fsq import FSQQuantizer
from wmkit.tokenizers.vidtok import _log2, _multipliers
from wmkit.tokenizers.vq import VQQuantizer

__all__ = [
    "COMPRESSIVE_SIZES",
    "CompressiveOutput",
    "CompressiveTokenizer",
    "FrameTokens",
]

#: Named sizes: base channels, channel multipliers per resolution level (extended with the
#: last value / truncated to ``log2(spatial_compression) + 1`` levels), resnet blocks per
#: level and attention heads.
COMPRESSIVE_SIZES: dict[str, dict] = {
    "tiny": {"channels": 8, "multipliers": [1, 2, 2], "blocks": 1, "heads": 1},
    "small": {"channels": 32, "multipliers": [1, 2, 4], "blocks": 1, "heads": 4},
    "base": {"channels": 128, "multipliers": [1, 2, 4], "blocks": 2, "heads": 8},
}


@dataclass
class CompressiveOutput:
    """What :meth:`CompressiveTokenizer.forward` returns for training.

    Attributes:
        reconstruction: ``[B, T, C, H, W]``, not clamped, frames in input order.
        context_ids: ``long [B, T0, h, w]``.
        future_ids: ``long [B, T - T0, h', w']``.
        loss: the quantizers' auxiliary losses (commitment / entropy), already weighted.
        context_indices: which frames were the context.
        logs: scalars worth logging.
    """

    reconstruction: Tensor
    context_ids: Tensor
    future_ids: Tensor
    loss: Tensor
    context_indices: tuple[int, ...]
    logs: dict[str, Tensor] = field(default_factory=dict)


def _quantizer(
    kind: str, dim: int, levels: list[int], codebook_size: int, vq: dict
) -> FSQQuantizer | VQQuantizer:
    if kind == "fsq":
        return FSQQuantizer(list(levels))
    return VQQuantizer(dim, codebook_size, **vq)


def _check_options(
    size: str,
    quantizer: str,
    spatial_compression: int,
    future_patch: int,
    context_frames: int | None,
    future_input: str,
    future_residual: bool,
) -> int:
    """Raise ``ValueError`` naming the first bad :class:`CompressiveTokenizer` argument;
    return ``log2(spatial_compression)``."""
    if size not in COMPRESSIVE_SIZES:
        raise ValueError(f"size must be one of {sorted(COMPRESSIVE_SIZES)}; got {size!r}")
    if quantizer not in ("fsq", "vq"):
        raise ValueError(f"quantizer must be 'fsq' or 'vq'; got {quantizer!r}")
    n_s = _log2(spatial_compression, "spatial_compression")
    _log2(future_patch, "future_patch")
    if context_frames is not None and context_frames < 1:
        raise ValueError(f"context_frames must be >= 1 or None; got {context_frames}")
    if future_input not in ("frame", "change"):
        raise ValueError(f"future_input must be 'frame' or 'change'; got {future_input!r}")
    if future_input == "change" and not future_residual:
        raise ValueError(
            "future_input='change' needs future_residual=True (the change is taken from "
            "the frame the decoder adds it back to)"
        )
    return n_s


class CompressiveTokenizer(CompressiveContract, nn.Module, PretrainedMixin):
    """Context frames → ``N`` tokens each; future frames → ``n = N / p²`` tokens each,
    conditioned on the context (iVideoGPT's compressive tokenizer).

    Satisfies :class:`wmkit.core.Tokenizer` (``encode(video)`` uses the configured
    ``context_frames``; with ``None`` every frame is context). Videos are
    ``float [B, T, C, H, W]`` in [-1, 1] with ``H, W`` multiples of ``s·p``.

    Args:
        size: named size from :data:`COMPRESSIVE_SIZES`.
        spatial_compression: context downsampling ``s`` (power of two): ``(H/s)·(W/s)``
            tokens per context frame.
        future_patch: patch ``p`` (power of two) over the future latent grid:
            ``(H/(s·p))·(W/(s·p))`` tokens per future frame.
        quantizer: ``"fsq"`` or ``"vq"`` (EMA, cosine, dead-code reset).
        context_levels: FSQ levels of the context codebook (``prod`` ids).
        future_levels: FSQ levels of the future codebook.
        codebook_size: VQ context codebook size (iVideoGPT: 8192).
        future_codebook_size: VQ future codebook size.
        vq_dim: VQ latent channels (both codebooks).
        vq_codebook_dim: VQ lookup dimension (factorised codes).
        vq_decay: VQ EMA decay.
        vq_dead_code_threshold: VQ dead-code re-seeding threshold.
        commitment_weight: VQ commitment weight.
        cross_attention: ``False`` removes the future path's cross-attention (the future
            frames are then tokenized on their own: a per-frame tokenizer with ``n`` tokens;
            the ablation and benchmark baseline).
        cross_attention_levels: how many of the deepest resolution levels cross-attend.
        context_frames: default ``T0`` of ``encode(video)`` (``None``: all frames).
        future_residual: decode future frames as the latest context frame plus a change
            (module docstring).
        future_input: what the future encoder sees: ``"frame"`` (the future frame, as
            iVideoGPT) or ``"change"`` (the future frame minus the latest context frame, the
            residual anchor; needs ``future_residual``). With ``"change"`` an unchanged frame
            is all zeros to the encoder and gets a few codes whatever the scene (only the
            encoder's cross-attention adds context), and future reconstruction improves, but an
            AR world model on them favours "no change" and stops reading the actions (the
            CHANGELOG has the figures).
        in_channels: video channels.
        channels: override the size's base width.
        multipliers: override the size's channel multipliers.
        blocks: override the size's resnet blocks per level.
        heads: override the size's attention heads.
    """

    def __init__(
        self,
        size: str = "tiny",
        spatial_compression: int = 4,
        future_patch: int = 4,
        quantizer: Literal["fsq", "vq"] = "fsq",
        context_levels: list[int] | None = None,
        future_levels: list[int] | None = None,
        codebook_size: int = 8192,
        future_codebook_size: int = 8192,
        vq_dim: int = 32,
        vq_codebook_dim: int | None = 8,
        vq_decay: float = 0.99,
        vq_dead_code_threshold: float = 2.0,
        commitment_weight: float = 0.25,
        cross_attention: bool = True,
        cross_attention_levels: int = 2,
        context_frames: int | None = None,
        future_residual: bool = False,
        future_input: Literal["frame", "change"] = "frame",
        in_channels: int = 3,
        channels: int | None = None,
        multipliers: list[int] | None = None,
        blocks: int | None = None,
        heads: int | None = None,
    ) -> None:
        super().__init__()
        n_s = _check_options(
            size,
            quantizer,
            spatial_compression,
            future_patch,
            context_frames,
            future_input,
            future_residual,
        )
        self.future_input = future_input
        given = {"channels": channels, "multipliers": multipliers, "blocks": blocks, "heads": heads}
        cfg = {**COMPRESSIVE_SIZES[size], **{k: v for k, v in given.items() if v is not None}}
        widths = [cfg["channels"] * m for m in _multipliers(list(cfg["multipliers"]), n_s + 1)]
        if not 0 <= cross_attention_levels <= len(widths):
            raise ValueError(
                f"cross_attention_levels must be in [0, {len(widths)}]; "
                f"got {cross_attention_levels}"
            )
        self.s, self.p = spatial_compression, future_patch
        self.in_channels = in_channels
        self.default_context_frames = context_frames
        self.cross_attention = cross_attention
        vq = {
            "codebook_dim": vq_codebook_dim,
            "decay": vq_decay,
            "dead_code_threshold": vq_dead_code_threshold,
            "commitment_weight": commitment_weight,
        }
        ctx_levels = list(context_levels or [8, 8, 8, 6, 5])
        fut_levels = list(future_levels or [8, 8, 8, 6, 5])
        self.context_quantizer = _quantizer(quantizer, vq_dim, ctx_levels, codebook_size, vq)
        self.future_quantizer = _quantizer(quantizer, vq_dim, fut_levels, future_codebook_size, vq)
        ctx_dim, fut_dim = self.context_quantizer.dim, self.future_quantizer.dim
        latent = widths[-1]  # future latent channels before patchifying
        cross = cross_attention_levels if cross_attention else 0
        arch = {"widths": widths, "blocks": cfg["blocks"], "heads": cfg["heads"]}
        self.context_encoder = FrameEncoder(in_channels, ctx_dim, cross_levels=0, **arch)
        self.context_decoder = FrameDecoder(ctx_dim, in_channels, cross_levels=0, **arch)
        self.future_encoder = FrameEncoder(in_channels, latent, cross_levels=cross, **arch)
        self.future_decoder = FrameDecoder(latent, in_channels, cross_levels=cross, **arch)
        self.patch_in = nn.Linear(latent * future_patch**2, fut_dim)
        self.patch_out = nn.Linear(fut_dim, latent * future_patch**2)
        self.future_residual = future_residual
        if future_residual:
            self.anchor_refine = residual.anchor_refine(widths[0], in_channels)
            # an untrained model copies the anchor frame
            for conv in (self.future_decoder.conv_out, self.anchor_refine[-1]):
                nn.init.zeros_(conv.conv.weight)
                nn.init.zeros_(conv.conv.bias)

    # ------------------------------------------------------------------ protocol properties
    @property
    def vocab_size(self) -> int:
        """Ids of the context codebook (``Latents.values``)."""
        return self.context_quantizer.vocab_size

    @property
    def future_vocab_size(self) -> int:
        """Ids of the future codebook (``Latents.future``)."""
        return self.future_quantizer.vocab_size

    def _context_grid(self, height: int, width: int) -> tuple[int, int]:
        f = self.s * self.p
        if height % f or width % f:
            raise ValueError(
                f"video height and width must be multiples of spatial_compression·future_patch"
                f" = {f}; got {height}x{width}"
            )
        return height // self.s, width // self.s

    def num_context_frames(self, num_frames: int) -> int:
        """``T0`` that ``encode(video)`` uses without a context argument."""
        t0 = self.default_context_frames
        return num_frames if t0 is None else min(t0, num_frames)

    def future_tokens_shape(
        self, num_frames: int, height: int, width: int, context_frames: int | None = None
    ) -> tuple[int, ...]:
        """Shape of ``encode(video, context_frames=...).future`` without the batch dim."""
        h, w = self._context_grid(height, width)
        t0 = self.num_context_frames(num_frames) if context_frames is None else context_frames
        return (num_frames - t0, h // self.p, w // self.p)

    # ------------------------------------------------------------------ internals
    def _encode(
        self, video: Tensor, ctx: tuple[int, ...], fut: tuple[int, ...]
    ) -> tuple[object, object | None]:
        x = rearrange(video, "b t c h w -> b c t h w")
        z, feats = self.context_encoder(x[:, :, list(ctx)])  # [B, D, T0, h, w]
        qc = self.context_quantizer(z)
        if not fut:
            return qc, None
        future = x[:, :, list(fut)]  # [B, C, Tf, H, W]
        if self.future_input == "change":  # relative to the residual anchor (see _decode)
            future = future - x[:, :, ctx[residual.anchor_index(ctx, fut)]].unsqueeze(2)
        y, _ = self.future_encoder(future, feats if self.cross_attention else None)
        y = rearrange(y, "b c t (y p) (x q) -> b t y x (p q c)", p=self.p, q=self.p)
        y = self.patch_in(y).movedim(-1, 1)  # [B, Df, Tf, h', w']
        return qc, self.future_quantizer(y)

    def _decode(
        self,
        ctx_codes: Tensor,
        fut_codes: Tensor | None,
        ctx: tuple[int, ...],
        fut: tuple[int, ...],
        context_frames: Tensor | None = None,
    ) -> Tensor:
        """Codes ``[B, D, T0, h, w]`` and ``[B, Df, Tf, h', w']`` → video ``[B, T, C, H, W]``;
        ``context_frames [B, C, T0, H, W]``: real context pixels, the residual anchor."""
        frames, feats = self.context_decoder(ctx_codes)  # [B, C, T0, H, W]
        if fut_codes is not None and fut_codes.shape[2] > 0:
            h, w = ctx_codes.shape[-2:]
            y = self.patch_out(fut_codes.movedim(1, -1))  # [B, Tf, h', w', p·p·c]
            y = rearrange(y, "b t y x (p q c) -> b c t (y p) (x q)", p=self.p, q=self.p)
            if y.shape[-2:] != (h, w):
                raise ValueError(
                    f"future tokens [.., {fut_codes.shape[-2]}, {fut_codes.shape[-1]}] do not "
                    f"match context tokens [.., {h}, {w}] (future_patch={self.p})"
                )
            future, ffeats = self.future_decoder(y, feats if self.cross_attention else None)
            if self.future_residual:
                source = frames if context_frames is None else context_frames.to(frames.dtype)
                hidden = F.silu(self.future_decoder.norm_out(ffeats[-1]))
                j = residual.anchor_index(ctx, fut)
                future = residual.add_change(future, hidden, source, j, self.anchor_refine)
            frames = torch.cat([frames, future], dim=2)
        order = torch.tensor(ctx + fut, device=frames.device).argsort()
        return rearrange(frames[:, :, order], "b c t h w -> b t c h w")

    # ------------------------------------------------------------------ public API
    def forward(
        self,
        video: Tensor,
        context_frames: int | None = None,
        context_indices: Sequence[int] | None = None,
    ) -> CompressiveOutput:
        """Training pass: encode, quantize, decode (straight-through codes)."""
        self._check_input(video)
        ctx, fut = self.split(video.shape[1], context_frames, context_indices)
        qc, qf = self._encode(video, ctx, fut)
        anchor = rearrange(video[:, list(ctx)], "b t c h w -> b c t h w")
        recon = self._decode(qc.codes, qf.codes if qf is not None else None, ctx, fut, anchor)
        loss = qc.loss + (qf.loss if qf is not None else 0.0)
        logs = {f"context_{k}": v for k, v in qc.logs.items()}
        if qf is not None:
            logs.update({f"future_{k}": v for k, v in qf.logs.items()})
        return CompressiveOutput(
            reconstruction=recon,
            context_ids=qc.ids,
            future_ids=qf.ids if qf is not None else self._no_future(qc.ids),
            loss=loss,
            context_indices=ctx,
            logs=logs,
        )

    def encode(
        self,
        video: Tensor,
        context_frames: int | None = None,
        context_indices: Sequence[int] | None = None,
    ) -> Latents:
        """``float [B, T, C, H, W]`` → ``Latents(values=long [B, T0, h, w], future=long
        [B, T - T0, h', w'], context_indices)``; future frames keep their time order."""
        self._check_input(video)
        ctx, fut = self.split(video.shape[1], context_frames, context_indices)
        qc, qf = self._encode(video, ctx, fut)
        return Latents(
            values=qc.ids,
            kind="discrete",
            future=qf.ids if qf is not None else self._no_future(qc.ids),
            context_indices=ctx,
            context_frames=video[:, list(ctx)],
        )

    def decode(self, latents: Latents | Tensor) -> Tensor:
        """``Latents`` (context ids, future ids, context indices) or context ids alone
        (every frame a context frame) → video ``[B, T, C, H, W]`` in [-1, 1]."""
        values, future = self._unpack(latents)
        if not isinstance(values, Tensor) or values.is_floating_point() or values.ndim != 4:
            raise ValueError(
                "latents must be Latents or context token ids long [B, T0, h, w]; got "
                + (f"{values.dtype} {tuple(values.shape)}" if isinstance(values, Tensor) else "")
                + type(values).__name__
            )
        t0 = values.shape[1]
        tf = 0 if future is None else future.shape[1]
        if future is not None and (future.ndim != 4 or future.shape[0] != values.shape[0]):
            raise ValueError(
                f"latents.future must be long [{values.shape[0]}, T - T0, h', w']; "
                f"got {tuple(future.shape)}"
            )
        ctx, fut = self._latents_split(latents, t0, tf)
        ctx_codes = self.context_quantizer.ids_to_codes(values)  # [B, D, T0, h, w]
        fut_codes = self.future_quantizer.ids_to_codes(future) if tf else None
        anchor = latents.context_frames if isinstance(latents, Latents) else None
        if anchor is not None:
            anchor = residual.context_anchor(anchor, values, self.in_channels)
        return self._decode(ctx_codes, fut_codes, ctx, fut, anchor).clamp(-1, 1)
