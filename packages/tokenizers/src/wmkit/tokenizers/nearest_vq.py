"""Plain nearest-neighbour vector quantization (van den Oord et al. 2017, VQ-VAE), as
iVideoGPT's tokenizer uses it (diffusers' ``VectorQuantizer`` with ``legacy=False``).

Each vector is replaced by the codebook entry at the smallest Euclidean distance
(``argmin`` of ``torch.cdist``; the first index on ties), with no normalisation, no EMA and
no dead-code re-seeding. The codebook is learned by the loss
``mean((sg[z] - e)²) + beta·mean((z - sg[e])²)`` (codebook + commitment), and gradients pass
to the encoder straight through (``z + sg[e - z]``).

:class:`~wmkit.tokenizers.vq.VQQuantizer` (EMA, cosine lookup, dead-code reset) is the
better-behaved choice for training from scratch; this one reproduces released checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["NearestVQ", "NearestVQOutput"]


@dataclass
class NearestVQOutput:
    """``codes`` (straight-through, the input's shape), ``ids`` (``long``, the input's shape
    without the last dim) and ``loss`` (codebook + ``beta``·commitment, a scalar)."""

    codes: Tensor
    ids: Tensor
    loss: Tensor


class NearestVQ(nn.Module):
    """Nearest-neighbour VQ over the last dim of ``[..., D]``.

    Args:
        num_embeddings: codebook size.
        dim: code dimension ``D``.
        beta: weight of the commitment term (iVideoGPT: 1).
    """

    def __init__(self, num_embeddings: int, dim: int, beta: float = 1.0) -> None:
        super().__init__()
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"num_embeddings and dim must be >= 1; got {num_embeddings} and {dim}")
        self.beta = beta
        self.embedding = nn.Embedding(num_embeddings, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    @property
    def num_embeddings(self) -> int:
        return self.embedding.num_embeddings

    @property
    def dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, z: Tensor) -> NearestVQOutput:
        if z.ndim < 2 or z.shape[-1] != self.dim:
            raise ValueError(f"z must be [..., {self.dim}]; got {tuple(z.shape)}")
        flat = z.reshape(-1, self.dim)
        ids = torch.argmin(torch.cdist(flat, self.embedding.weight), dim=1)  # [N]
        codes = self.embedding(ids).view(z.shape)
        loss = torch.mean((codes - z.detach()) ** 2) + self.beta * torch.mean(
            (codes.detach() - z) ** 2
        )
        return NearestVQOutput(
            codes=z + (codes - z).detach(), ids=ids.view(z.shape[:-1]), loss=loss
        )

    def lookup(self, ids: Tensor) -> Tensor:
        """``long [...]`` ids in ``[0, num_embeddings)`` → codes ``[..., D]``."""
        if ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"ids must be an integer tensor; got {ids.dtype}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(
                f"ids must be in [0, {self.num_embeddings}); got "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        return self.embedding(ids.long())
