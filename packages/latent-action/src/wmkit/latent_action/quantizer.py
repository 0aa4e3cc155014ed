"""`ActionBottleneck`: the tight bottleneck between the inverse-dynamics encoder and the decoder.

A latent action is ``num_tokens`` tokens of ``token_dim`` features each. Three kinds:

- ``"fsq"`` (default): finite scalar quantization (Mentzer et al. 2023) from
  vector-quantize-pytorch. Each token's ``token_dim`` features are projected to
  ``len(levels)`` scalars and rounded; the codebook is implicit, so it cannot collapse the
  way a learned codebook does (LAPA issue #17: their NSVQ codebook collapsed to one code when
  training from scratch once its periodic code replacement stopped).
- ``"vq"``: a learned codebook (Genie's latent action model, LAPA) from vector-quantize-pytorch
  with EMA updates, k-means initialisation and **dead-code reset**
  (``threshold_ema_dead_code``: a code whose EMA usage falls below the threshold is replaced
  by an encoder output from the batch, the same remedy as LAPA's ``replace_unused_codebooks``
  but applied every step, not on a schedule that stops).
- ``"none"``: the continuous variant, ``tanh``-bounded features, no quantization.

All tokens share one codebook (as LAPA's single NSVQ codebook for its 4 tokens), so the
latent action spec is ``multi_discrete([codebook_size] * num_tokens)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ, VectorQuantize

from wmkit.core import ActionSpec

__all__ = ["ActionBottleneck", "BottleneckOutput", "QuantizerKind", "code_statistics"]

QuantizerKind = Literal["fsq", "vq", "none"]


@dataclass
class BottleneckOutput:
    """``values`` the (straight-through) quantized features ``[N, K, D]``; ``actions`` the
    latent actions in the spec's layout (``long [N, K]`` ids or ``float [N, K, D]``);
    ``loss`` the auxiliary loss (VQ commitment; 0 otherwise)."""

    values: Tensor
    actions: Tensor
    loss: Tensor


def code_statistics(ids: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Perplexity and usage of code ids ``long [N, K]`` (one shared codebook).

    ``perplexity`` is ``exp(entropy)`` of the empirical code distribution (1 = collapse,
    ``codebook_size`` = uniform use); ``usage`` the fraction of codes used at least once.
    """
    counts = torch.bincount(ids.reshape(-1), minlength=codebook_size).float()
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return {"perplexity": entropy.exp(), "usage": (counts > 0).float().mean()}


class ActionBottleneck(nn.Module):
    """Quantize ``[N, K, D]`` token features into latent actions.

    Args:
        kind: ``"fsq"``, ``"vq"`` or ``"none"`` (continuous).
        num_tokens: tokens per latent action ``K``.
        token_dim: features per token ``D``.
        codebook_size: codes per token (VQ); FSQ uses ``prod(fsq_levels)``.
        fsq_levels: FSQ levels per scalar; default ``(8,)`` = 8 codes per token as LAPA.
        vq_decay: EMA decay of the VQ codebook.
        vq_dead_code_threshold: EMA usage below which a VQ code is reset to a batch sample.
        vq_commitment_weight: weight of the VQ commitment loss.
    """

    def __init__(
        self,
        kind: QuantizerKind = "fsq",
        num_tokens: int = 4,
        token_dim: int = 16,
        codebook_size: int = 8,
        fsq_levels: tuple[int, ...] = (8,),
        vq_decay: float = 0.9,
        vq_dead_code_threshold: float = 1.0,
        vq_commitment_weight: float = 0.25,
    ) -> None:
        super().__init__()
        if kind not in ("fsq", "vq", "none"):
            raise ValueError(f"quantizer must be 'fsq', 'vq' or 'none'; got {kind!r}")
        if num_tokens < 1 or token_dim < 1:
            raise ValueError(
                f"num_tokens and token_dim must be >= 1; got {num_tokens}, {token_dim}"
            )
        self.kind = kind
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.quantizer: nn.Module | None
        if kind == "fsq":
            levels = [int(x) for x in fsq_levels]
            if not levels or any(x < 3 for x in levels):
                raise ValueError(
                    f"fsq_levels must be a non-empty list of ints >= 3; got {list(fsq_levels)}"
                )
            # FSQ computes its implicit codebook with .item() at construction, which fails
            # under a meta-device context (configs are sized on meta); its few weights and
            # buffers are built on the CPU instead.
            with torch.device("cpu"):
                self.quantizer = FSQ(levels=levels, dim=token_dim)
            self.codebook_size = math.prod(levels)
        elif kind == "vq":
            if codebook_size < 2:
                raise ValueError(f"codebook_size must be >= 2; got {codebook_size}")
            self.quantizer = VectorQuantize(
                dim=token_dim,
                codebook_size=codebook_size,
                decay=vq_decay,
                kmeans_init=True,
                kmeans_iters=5,
                threshold_ema_dead_code=vq_dead_code_threshold,
                commitment_weight=vq_commitment_weight,
            )
            self.codebook_size = codebook_size
        else:
            self.quantizer = None
            self.codebook_size = 0

    @property
    def spec(self) -> ActionSpec:
        """The latent actions' spec: one id per token, or a ``[K, D]`` box in [-1, 1]."""
        if self.kind == "none":
            return ActionSpec.continuous((self.num_tokens, self.token_dim), low=-1.0, high=1.0)
        return ActionSpec.multi_discrete([self.codebook_size] * self.num_tokens)

    def forward(self, z: Tensor) -> BottleneckOutput:
        """``z`` ``[N, K, D]`` → quantized features, latent actions and auxiliary loss."""
        zero = z.new_zeros(())
        if self.kind == "none":
            values = torch.tanh(z)  # [N, K, D]
            return BottleneckOutput(values, values, zero)
        if self.kind == "fsq":
            values, ids = self.quantizer(z)  # [N, K, D], [N, K]
            return BottleneckOutput(values, ids.long(), zero)
        values, ids, loss = self.quantizer(z)  # [N, K, D], [N, K], []
        return BottleneckOutput(values, ids.long(), loss.reshape(()))

    def lookup(self, actions: Tensor) -> Tensor:
        """Latent actions ``[N, K]`` ids / ``[N, K, D]`` values → features ``[N, K, D]``."""
        if self.kind == "none":
            return actions.float()
        if self.kind == "fsq":
            return self.quantizer.indices_to_codes(actions.long())  # [N, K, D]
        return self.quantizer.get_output_from_indices(actions.long())  # [N, K, D]
