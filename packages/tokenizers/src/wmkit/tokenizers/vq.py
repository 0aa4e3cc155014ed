"""Vector quantization with the usual remedies against dead codes, for channel-first latents.

Wraps ``vector_quantize_pytorch.VectorQuantize`` (EMA codebook updates, cosine-similarity
lookup, re-seeding of codes whose EMA usage falls below a threshold, commitment loss) with
the layout and output of :class:`~wmkit.tokenizers.fsq.FSQQuantizer`, so a tokenizer can
take either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from wmkit.tokenizers.fsq import QuantizerOutput

__all__ = ["VQQuantizer"]


class VQQuantizer(nn.Module):
    """VQ over the channel dim of ``[B, D, ...]``; ``codebook_size`` ids.

    Args:
        dim: latent channels ``D``.
        codebook_size: number of codes (iVideoGPT uses 8192).
        codebook_dim: dimension of the lookup space (a low-dimensional factorised codebook
            improves usage; ``None``: ``dim``).
        decay: EMA decay of the codebook.
        use_cosine_sim: l2-normalised lookup (cosine similarity).
        dead_code_threshold: codes whose EMA cluster size drops below this are re-seeded
            from the current batch (0 disables it).
        commitment_weight: weight of the commitment loss (included in ``loss``).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int = 8192,
        codebook_dim: int | None = 8,
        decay: float = 0.99,
        use_cosine_sim: bool = True,
        dead_code_threshold: float = 2.0,
        commitment_weight: float = 0.25,
    ) -> None:
        super().__init__()
        if dim < 1 or codebook_size < 2:
            raise ValueError(
                f"dim must be >= 1 and codebook_size >= 2; got dim={dim}, "
                f"codebook_size={codebook_size}"
            )
        self.dim = dim
        self.codebook_size = codebook_size
        self.vq = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            decay=decay,
            use_cosine_sim=use_cosine_sim,
            threshold_ema_dead_code=dead_code_threshold,
            commitment_weight=commitment_weight,
        )

    @property
    def vocab_size(self) -> int:
        return self.codebook_size

    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` → codes ``[B, D, ...]`` and ids ``long [B, ...]``."""
        if z.ndim < 3 or z.shape[1] != self.dim:
            raise ValueError(f"z must be [B, {self.dim}, ...]; got {tuple(z.shape)}")
        b, rest = z.shape[0], z.shape[2:]
        flat = z.movedim(1, -1).reshape(b, -1, self.dim)  # [B, N, D]
        codes, ids, loss = self.vq(flat)  # [B, N, D], [B, N], scalar
        codes = codes.reshape(b, *rest, self.dim).movedim(-1, 1)
        return QuantizerOutput(codes=codes, ids=ids.reshape(b, *rest).long(), loss=loss.sum())

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """``long [B, ...]`` ids → codes ``[B, D, ...]``."""
        if ids.is_floating_point():
            raise TypeError(f"ids must be an integer tensor; got {ids.dtype}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.codebook_size):
            raise ValueError(
                f"ids must be in [0, {self.codebook_size}); got "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        b, rest = ids.shape[0], ids.shape[1:]
        codes = self.vq.get_output_from_indices(ids.reshape(b, -1).long())  # [B, N, D]
        return codes.reshape(b, *rest, self.dim).movedim(-1, 1).to(torch.float32)
