"""Finite scalar quantization (Mentzer et al. 2023) for channel-first video latents.

Wraps ``vector_quantize_pytorch.FSQ`` (the library does the bounding, straight-through
rounding and id arithmetic) with the layout our tokenizers use, ``long`` ids and an
optional code-usage entropy term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ

__all__ = ["FSQQuantizer", "QuantizerOutput"]


@dataclass
class QuantizerOutput:
    """``codes`` ``[B, D, ...]`` (quantized, straight-through gradients), ``ids`` ``long
    [B, ...]``, the auxiliary ``loss`` (already weighted) and scalar ``logs``."""

    codes: Tensor
    ids: Tensor
    loss: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


class FSQQuantizer(nn.Module):
    """FSQ over the channel dim of ``[B, D, ...]`` with ``D = len(levels)``; ``prod(levels)`` ids.

    VidTok (§3.2) adds an entropy loss over the joint codebook; with up to 262k codes that
    is a ``[N, 262144]`` softmax per batch, so we use a *factorised* version instead: each
    dimension's soft assignment to its levels should be confident per sample (low entropy)
    and spread over the batch (high entropy), which keeps every level of every dimension in
    use at a cost linear in ``sum(levels)``.

    Args:
        levels: levels per latent dimension (e.g. ``[8, 8, 8, 6, 5]``: 15360 ids;
            ``[8] * 6``: 262144 ids). Each level must be ``>= 3``.
        entropy_weight: weight of the factorised entropy term (0 disables it).
        inv_temperature: sharpness of the soft assignment in that term.
    """

    def __init__(
        self, levels: list[int], entropy_weight: float = 0.0, inv_temperature: float = 10.0
    ) -> None:
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 3:
            raise ValueError(f"levels must be a non-empty list of ints >= 3; got {levels}")
        self.levels = levels
        self.entropy_weight = entropy_weight
        self.inv_temperature = inv_temperature
        # Built on the CPU even under ``torch.device("meta")`` (FSQ reads its levels with
        # ``.item()``); it has buffers only, so parameter counts on meta are unaffected.
        with torch.device("cpu"):
            self.fsq = FSQ(levels=levels, dim=len(levels))
            table = torch.full((len(levels), max(levels)), 1e4)  # padding: never the nearest level
            for i, n in enumerate(levels):
                half = n // 2
                table[i, :n] = (torch.arange(n) - half) / half
        self.register_buffer("level_values", table, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def vocab_size(self) -> int:
        return math.prod(self.levels)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` → codes ``[B, D, ...]`` and ids ``long [B, ...]``."""
        if z.ndim < 3 or z.shape[1] != self.dim:
            raise ValueError(f"z must be [B, {self.dim}, ...]; got {tuple(z.shape)}")
        codes, ids = self.fsq(z)
        loss = z.new_zeros(())
        logs: dict[str, Tensor] = {}
        if self.entropy_weight > 0:
            per_sample, batch = self._entropies(z)
            loss = self.entropy_weight * (per_sample - batch)
            logs = {"fsq_sample_entropy": per_sample.detach(), "fsq_batch_entropy": batch.detach()}
        return QuantizerOutput(codes=codes, ids=ids.long(), loss=loss, logs=logs)

    def _entropies(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean per-sample and batch entropies of each dimension's soft level assignment."""
        lv = torch.tensor(self.levels, device=z.device, dtype=torch.float32)
        half_l = (lv - 1) * (1 + 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        x = z.float().movedim(1, -1).reshape(-1, self.dim)  # [N, D]
        bounded = (torch.tanh(x + shift) * half_l - offset) / torch.div(
            lv, 2, rounding_mode="floor"
        )
        dist = (bounded.unsqueeze(-1) - self.level_values).square()  # [N, D, Lmax]
        prob = torch.softmax(-dist * self.inv_temperature, dim=-1)
        sample_h = -(prob * prob.clamp_min(1e-8).log()).sum(-1).mean()
        avg = prob.mean(0)  # [D, Lmax]
        batch_h = -(avg * avg.clamp_min(1e-8).log()).sum(-1).mean()
        return sample_h, batch_h

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """``long [B, ...]`` ids → codes ``[B, D, ...]`` (values on the FSQ grid in [-1, 1])."""
        if ids.is_floating_point():
            raise TypeError(f"ids must be an integer tensor; got {ids.dtype}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(
                f"ids must be in [0, {self.vocab_size}); got [{int(ids.min())}, {int(ids.max())}]"
            )
        codes = self.fsq._indices_to_codes(ids.long())  # [B, ..., D]
        return codes.movedim(-1, 1).to(self.level_values.dtype)

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """Codes ``[B, D, ...]`` on the FSQ grid → ``long [B, ...]`` ids."""
        if codes.ndim < 2 or codes.shape[1] != self.dim:
            raise ValueError(f"codes must be [B, {self.dim}, ...]; got {tuple(codes.shape)}")
        return self.fsq.codes_to_indices(codes.movedim(1, -1).float()).long()
