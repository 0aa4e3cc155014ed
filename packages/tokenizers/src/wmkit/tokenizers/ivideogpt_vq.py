"""iVideoGPT's conditional compressive tokenizer with plain VQ (Wu et al. 2024,
arXiv:2405.15223, §3.1; thuml/iVideoGPT's ``CompressiveVQModel``), parameter for parameter,
so the released checkpoints load (``convert_ivideogpt``).

**Context frames** (the first ``context_length`` of a clip) go through ``encoder`` →
``quant_conv`` (1×1) → nearest-neighbour VQ ``quantize``: ``(H/s)·(W/s)`` ids each (16×16 at
64×64). **Future frames** go through ``cond_encoder``, which cross-attends to the context
frames' ``encoder`` features; its latent map is cut into ``p × p`` patches, each flattened in
(patch row, patch column, channel) order, projected by ``quant_linear`` and quantized with a
second codebook ``dynamics_quantize``: ``(H/(s·p))·(W/(s·p))`` ids each (4×4 at 64×64).
Decoding mirrors this: ``post_quant_conv`` → ``decoder`` for context frames;
``post_quant_linear`` → un-patchify → ``cond_decoder``, which cross-attends to the *plain
decoder's* features of the context frames (so decoding needs only the ids). Every future
frame is coded independently given the same context.

**Pixels.** wmkit videos are ``[-1, 1]`` (the ``Tokenizer`` contract); iVideoGPT's networks
take and return ``[0, 1]`` RGB. :meth:`encode` and :meth:`decode` convert at the boundary
(``(x + 1) / 2`` in, ``2y - 1`` out, clamped to ``[-1, 1]``); :meth:`encode_unit` and
:meth:`decode_unit` work in ``[0, 1]`` and return the network's unclamped output, as the
original ``tokenize`` / ``detokenize`` do.

Where we differ from the original: ids are returned as grids (``Latents.values`` context ids
``[B, T0, h, w]``, ``Latents.future`` raw dynamics code indices ``[B, F, h', w']`` without
the ``num_vq_embeddings`` offset); laying them out as one sequence with ``scf`` / ``sdf``
slots is the world model's business. ``encode(video)`` without a context makes every frame a
context frame (what the ``Tokenizer`` contract needs; the context path works on any number of
frames), and ``context_indices`` puts any frames first (the goal-conditioned order
``(T-1, 0)``); with future frames the context must have exactly ``context_length`` frames,
since the cross-attention position embeddings are sized for it. Frames must be
``resolution × resolution``. The original hard-codes the 16×16 context grid and the decoder's
first attention resolution; here they follow from ``resolution`` and the number of levels
(equal for every released config).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents
from wmkit.tokenizers.compressive_contract import CompressiveContract
from wmkit.tokenizers.ivideogpt_io import (
    DecodedContext,
    IVideoGPTCodes,
    IVideoGPTTokenizerOutput,
    check_arguments,
    check_ids,
    check_size,
    check_unit_pixels,
)
from wmkit.tokenizers.ivideogpt_vae import ContextAttention, FeatureDecoder, FeatureEncoder
from wmkit.tokenizers.nearest_vq import NearestVQ, NearestVQOutput

__all__ = [
    "IVIDEOGPT_TOKENIZER_SIZES",
    "DecodedContext",
    "IVideoGPTCodes",
    "IVideoGPTTokenizer",
    "IVideoGPTTokenizerOutput",
]

#: Named configurations: the released ones (``configs/ctx_vae64`` with 1 or 2 context frames
#: and ``configs/ctx_vae`` at 256×256) and a tiny one for tests.
IVIDEOGPT_TOKENIZER_SIZES: dict[str, dict[str, Any]] = {
    "64-ctx2": {},
    "64-ctx1": {"context_length": 1},
    "256-ctx2": {
        "block_out_channels": [128, 256, 256, 512, 768],
        "resolution": 256,
        "max_att_resolution": 32,
    },
    "tiny": {
        "block_out_channels": [8, 16, 16],
        "layers_per_block": 1,
        "latent_channels": 4,
        "num_vq_embeddings": 64,
        "num_dyn_embeddings": 64,
        "norm_num_groups": 4,
        "resolution": 16,
        "max_att_resolution": 8,
        "patch_size": 2,
        "cross_attention_groups": 4,
    },
}


class IVideoGPTTokenizer(CompressiveContract, nn.Module, PretrainedMixin):
    """iVideoGPT's plain-VQ compressive tokenizer (module docstring); satisfies
    :class:`wmkit.core.Tokenizer` (kind ``"discrete"``).

    Defaults are the released 64×64 tokenizer with two context frames
    (``configs/ctx_vae64``); :data:`IVIDEOGPT_TOKENIZER_SIZES` names the others.

    Args:
        block_out_channels: channels of each encoder level (``s = 2^(levels-1)``).
        layers_per_block: resnets per encoder level (the decoder has one more).
        latent_channels: channels of the encoders' output and the decoders' input.
        vq_embed_dim: code dimension of both codebooks (``None``: ``latent_channels``).
        num_vq_embeddings: context codebook size.
        num_dyn_embeddings: dynamics (future) codebook size.
        norm_num_groups: GroupNorm groups of the encoders and decoders.
        context_length: context frames the cross-attention is built for.
        resolution: frame height = width.
        max_att_resolution: feature maps at most this wide get cross-attention.
        patch_size: ``p``: future frames get one id per ``p × p`` latent patch.
        mid_block_add_attention: self-attention in the plain encoder's and decoder's
            bottleneck (the conditional ones always have it).
        in_channels: pixel channels.
        beta: commitment weight of both VQ losses.
        cross_attention_groups: GroupNorm groups of the cross-attention norms.
        cross_attention_dropout: cross-attention dropout in training.
    """

    def __init__(
        self,
        block_out_channels: list[int] | None = None,
        layers_per_block: int = 2,
        latent_channels: int = 64,
        vq_embed_dim: int | None = None,
        num_vq_embeddings: int = 8192,
        num_dyn_embeddings: int = 8192,
        norm_num_groups: int = 32,
        context_length: int = 2,
        resolution: int = 64,
        max_att_resolution: int = 16,
        patch_size: int = 4,
        mid_block_add_attention: bool = False,
        in_channels: int = 3,
        beta: float = 1.0,
        cross_attention_groups: int = 32,
        cross_attention_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        widths = list(block_out_channels or [128, 256, 512])
        s = check_arguments(widths, norm_num_groups, resolution, patch_size, context_length)
        self.s, self.p = s, patch_size
        self.resolution = resolution
        self.in_channels = in_channels
        self.context_length = context_length
        self.num_vq_embeddings = num_vq_embeddings
        self.num_dyn_embeddings = num_dyn_embeddings
        dim = vq_embed_dim if vq_embed_dim is not None else latent_channels
        arch = {"widths": widths, "layers": layers_per_block, "groups": norm_num_groups}
        attend = ContextAttention(
            resolution=resolution,
            max_resolution=max_att_resolution,
            context_frames=context_length,
            groups=cross_attention_groups,
            dropout=cross_attention_dropout,
        )
        plain = mid_block_add_attention
        self.encoder = FeatureEncoder(in_channels, latent_channels, mid_attention=plain, **arch)
        self.cond_encoder = FeatureEncoder(
            in_channels, latent_channels, mid_attention=True, context=attend, **arch
        )
        self.quant_conv = nn.Conv2d(latent_channels, dim, 1)
        self.quantize = NearestVQ(num_vq_embeddings, dim, beta)
        self.post_quant_conv = nn.Conv2d(dim, latent_channels, 1)
        patch = latent_channels * patch_size * patch_size
        self.quant_linear = nn.Linear(patch, dim)
        self.dynamics_quantize = NearestVQ(num_dyn_embeddings, dim, beta)
        self.post_quant_linear = nn.Linear(dim, patch)
        self.decoder = FeatureDecoder(latent_channels, in_channels, mid_attention=plain, **arch)
        self.cond_decoder = FeatureDecoder(
            latent_channels, in_channels, mid_attention=True, context=attend, **arch
        )

    # ------------------------------------------------------------------ protocol properties
    @property
    def vocab_size(self) -> int:
        """Ids of the context codebook (``Latents.values``)."""
        return self.num_vq_embeddings

    @property
    def future_vocab_size(self) -> int:
        """Ids of the dynamics codebook (``Latents.future``)."""
        return self.num_dyn_embeddings

    @property
    def grid(self) -> tuple[int, int]:
        """(context ids per side, future ids per side): ``(16, 4)`` for the released 64×64."""
        return self.resolution // self.s, self.resolution // (self.s * self.p)

    def num_context_frames(self, num_frames: int) -> int:
        """``T0`` that ``encode(video)`` uses without a context argument: every frame."""
        return num_frames

    def future_tokens_shape(
        self, num_frames: int, height: int, width: int, context_frames: int | None = None
    ) -> tuple[int, ...]:
        """Shape of ``encode(video, context_frames=context_length).future``.

        ``context_frames``, when given, must be the tokenizer's ``context_length`` (its
        cross-attention positions are sized for exactly that many context frames)."""
        if context_frames is not None and context_frames != self.context_length:
            raise ValueError(
                f"context_frames must be {self.context_length} (the tokenizer's "
                f"context_length); got {context_frames}"
            )
        check_size(height, width, self.resolution)
        return (num_frames - self.context_length, *[self.grid[1]] * 2)

    # ------------------------------------------------------------------ checks
    def _context_grid(self, height: int, width: int) -> tuple[int, int]:
        check_size(height, width, self.resolution)
        return self.grid[0], self.grid[0]

    def _context_count(self, num_frames: int, context_frames: int | None) -> int:
        n = super()._context_count(num_frames, context_frames)
        if n < num_frames and n != self.context_length:
            raise ValueError(
                f"with future frames the context must be context_length = "
                f"{self.context_length} frames (the cross-attention is built for it); got "
                f"context_frames={n} of {num_frames}"
            )
        return n

    # ------------------------------------------------------------------ networks
    def _encode(
        self, pixels: Tensor, n: int
    ) -> tuple[NearestVQOutput, NearestVQOutput | None, Tensor, Tensor | None]:
        """``[0, 1]`` pixels ``[B, T, C, H, W]``, context = the first ``n`` → the two VQ
        outputs and the two VQ inputs."""
        b = pixels.shape[0]
        frames = rearrange(pixels[:, :n], "b t c h w -> (b t) c h w")
        h, features = self.encoder(frames)
        z = rearrange(self.quant_conv(h), "(b t) d h w -> b t h w d", b=b)
        qc = self.quantize(z)
        if n == pixels.shape[1]:
            return qc, None, z, None
        future = rearrange(pixels[:, n:], "b t c h w -> (b t) c h w")
        context = [rearrange(f, "(b t) c h w -> b t c h w", b=b) for f in features]
        d, _ = self.cond_encoder(future, context)  # [B·F, latent, h, w]
        d = rearrange(d, "n c (y p) (x q) -> n (y x) (p q c)", p=self.p, q=self.p)
        d = rearrange(self.quant_linear(d), "(b t) l d -> b t l d", b=b)  # [B, F, L, D]
        return qc, self.dynamics_quantize(d), z, d

    def _future_ids(self, qc: NearestVQOutput, qf: NearestVQOutput | None) -> Tensor:
        """Dynamics ids as a grid ``long [B, F, h', w']`` (``F = 0`` without future frames)."""
        if qf is None:
            return self._no_future(qc.ids)
        return rearrange(qf.ids, "b t (y x) -> b t y x", y=self.grid[1])

    def _decode_context(self, codes: Tensor) -> DecodedContext:
        """Context codes ``[B, T0, h, w, D]`` → :class:`DecodedContext`."""
        b = codes.shape[0]
        q = self.post_quant_conv(rearrange(codes, "b t h w d -> (b t) d h w"))
        frames, features = self.decoder(q)  # [B·T0, C, H, W]
        return DecodedContext(
            frames=rearrange(frames, "(b t) c h w -> b t c h w", b=b),
            features=[rearrange(f, "(b t) c h w -> b t c h w", b=b) for f in features],
        )

    def _decode_future(self, context: DecodedContext, codes: Tensor) -> Tensor:
        """Dynamics codes ``[B, F, L, D]`` → ``[0, 1]``-scale frames ``[B, F, C, H, W]``."""
        b, g = codes.shape[0], self.grid[1]
        y = self.post_quant_linear(rearrange(codes, "b t l d -> (b t) l d"))  # [B·F, L, p·p·c]
        y = rearrange(y, "n (y x) (p q c) -> n c (y p) (x q)", y=g, x=g, p=self.p, q=self.p)
        frames, _ = self.cond_decoder(y, context.features)  # [B·F, C, H, W]
        return rearrange(frames, "(b t) c h w -> b t c h w", b=b)

    # ------------------------------------------------------------------ [0, 1] interface
    def encode_unit(self, pixels: Tensor, context_frames: int | None = None) -> IVideoGPTCodes:
        """iVideoGPT's ``tokenize`` on ``[0, 1]`` pixels ``[B, T, C, H, W]`` whose first
        ``context_frames`` (default: all) are the context; returns the id grids and the VQ
        inputs."""
        check_unit_pixels(pixels, "pixels", self.in_channels, self.resolution)
        n = self._context_count(pixels.shape[1], context_frames)
        qc, qf, z, d = self._encode(pixels, n)
        b, g = pixels.shape[0], self.grid[1]
        future_ids = self._future_ids(qc, qf)
        prequant_future = d if d is not None else z.new_zeros((b, 0, g * g, z.shape[-1]))
        return IVideoGPTCodes(
            context_ids=qc.ids,
            future_ids=future_ids,
            prequant_context=rearrange(z, "b t h w d -> b t d h w"),
            prequant_future=prequant_future,
        )

    def decode_context(self, context_ids: Tensor) -> DecodedContext:
        """Context ids ``long [B, T0, h, w]`` → their frames and the features future frames
        attend to; pass it to :meth:`decode_future` for every future frame of a rollout
        instead of decoding the context each time (the original's ``detokenize`` cache)."""
        check_ids(context_ids, "context_ids", self.grid[0])
        return self._decode_context(self.quantize.lookup(context_ids))

    def decode_future(self, context: DecodedContext, future_ids: Tensor) -> Tensor:
        """Raw dynamics ids ``long [B, F, h', w']`` → ``[0, 1]``-scale frames
        ``[B, F, C, H, W]`` (unclamped) given a :meth:`decode_context` result of
        ``context_length`` frames. Ids out of range raise (the original clamps generated
        ids into range; a caller holding a generated sequence clamps them itself)."""
        b, t0 = context.frames.shape[:2]
        check_ids(future_ids, "future_ids", self.grid[1], batch=b)
        if t0 != self.context_length:
            raise ValueError(
                f"decoding future frames needs context_length = {self.context_length} "
                f"context frames; got {t0}"
            )
        codes = self.dynamics_quantize.lookup(rearrange(future_ids, "b t y x -> b t (y x)"))
        return self._decode_future(context, codes)

    def decode_unit(self, context_ids: Tensor, future_ids: Tensor | None = None) -> Tensor:
        """iVideoGPT's ``detokenize``: context ids ``long [B, T0, h, w]`` and raw dynamics
        ids ``long [B, F, h', w']`` → ``[0, 1]``-scale frames ``[B, T0 + F, C, H, W]``,
        unclamped, context first."""
        context = self.decode_context(context_ids)
        if future_ids is None:
            return context.frames
        check_ids(future_ids, "future_ids", self.grid[1], batch=context_ids.shape[0])
        if not future_ids.shape[1]:
            return context.frames
        return torch.cat([context.frames, self.decode_future(context, future_ids)], dim=1)

    # ------------------------------------------------------------------ wmkit interface
    def forward(self, video: Tensor, context_frames: int | None = None) -> IVideoGPTTokenizerOutput:
        """Training pass on a ``[-1, 1]`` video (straight-through codes); the first
        ``context_frames`` (default ``context_length``, or all frames of a shorter clip) are
        the context."""
        self._check_input(video)
        t = video.shape[1]
        n = self._context_count(
            t, min(self.context_length, t) if context_frames is None else context_frames
        )
        qc, qf, _, _ = self._encode((video + 1) / 2, n)
        context = self._decode_context(qc.codes)
        recon = context.frames
        if qf is not None:
            recon = torch.cat([recon, self._decode_future(context, qf.codes)], dim=1)
        recon = recon * 2 - 1  # [B, T, C, H, W]
        loss = qc.loss + (qf.loss if qf is not None else torch.zeros_like(qc.loss))
        logs = {"context_vq_loss": qc.loss.detach()}
        if qf is not None:
            logs["future_vq_loss"] = qf.loss.detach()
        return IVideoGPTTokenizerOutput(
            reconstruction=recon,
            context_ids=qc.ids,
            future_ids=self._future_ids(qc, qf),
            loss=loss,
            logs=logs,
        )

    def encode(
        self,
        video: Tensor,
        context_frames: int | None = None,
        context_indices: Sequence[int] | None = None,
    ) -> Latents:
        """``[-1, 1]`` video ``[B, T, C, H, W]`` → ``Latents(values=long [B, T0, h, w],
        future=long [B, T - T0, h', w'], context_indices)``. Default: every frame is context;
        ``context_frames=context_length`` makes the rest future frames; ``context_indices``
        picks the context frames (e.g. ``(T - 1, 0)``: goal first), the future ones keep
        their time order."""
        self._check_input(video)
        ctx, fut = self.split(video.shape[1], context_frames, context_indices)
        codes = self.encode_unit((video[:, list(ctx + fut)] + 1) / 2, len(ctx))
        return Latents(
            values=codes.context_ids,
            kind="discrete",
            future=codes.future_ids,
            context_indices=ctx,
        )

    def decode(self, latents: Latents | Tensor) -> Tensor:
        """``Latents`` (context ids, future ids, context indices) or context ids alone →
        video ``[B, T, C, H, W]`` in ``[-1, 1]`` (clamped), frames in time order."""
        values, future = self._unpack(latents)
        if not isinstance(values, Tensor) or values.is_floating_point():
            raise ValueError(
                "latents must be Latents or context token ids long [B, T0, h, w]; got "
                + (f"{values.dtype} " if isinstance(values, Tensor) else type(values).__name__)
            )
        t0 = values.shape[1] if values.ndim == 4 else 0
        tf = future.shape[1] if future is not None and future.ndim == 4 else 0
        ctx, fut = self._latents_split(latents, t0, tf)
        frames = self.decode_unit(values, future) * 2 - 1  # [B, T, C, H, W], model order
        order = torch.tensor(ctx + fut, device=frames.device).argsort()
        return frames[:, order].clamp(-1, 1)
