"""Per-frame action conditioning with a learned "no action" vector (for dropout and CFG)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmkit.core import ActionSpec

__all__ = ["ActionEmbedding"]


class ActionEmbedding(nn.Module):
    """Actions ``[*batch, *action_shape]`` → vectors ``[*batch, dim]``.

    Discrete and multi-discrete actions: one embedding table per component, summed.
    Continuous actions: a linear map of the values rescaled to [-1, 1]. ``null`` is the
    learned vector for "no action" (the first frame of a clip, dropped actions, and the
    unconditional branch of classifier-free guidance).

    Args:
        action_spec: the actions.
        dim: embedding width.
    """

    def __init__(self, action_spec: ActionSpec, dim: int) -> None:
        super().__init__()
        self.spec = action_spec
        if action_spec.is_discrete:
            self.tables = nn.ModuleList(nn.Embedding(n, dim) for n in action_spec.token_vocab_sizes)
        else:
            self.linear = nn.Linear(action_spec.num_tokens, dim)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, actions: Tensor, keep: Tensor | None = None) -> Tensor:
        """``keep`` (bool ``[*batch]``) selects which actions are used; the rest get ``null``."""
        spec = self.spec
        nb = actions.ndim - len(spec.action_shape)
        if spec.is_discrete:
            ids = spec.to_tokens(actions)  # [*batch, K]
            emb = sum(table(ids[..., k]) for k, table in enumerate(self.tables))
        else:
            low, high = spec._bounds(actions)
            x = (actions.float() - low) / (high - low) * 2 - 1
            emb = self.linear(x.reshape(*actions.shape[:nb], -1))  # [*batch, dim]
        if keep is not None:
            emb = torch.where(keep[..., None], emb, self.null.to(emb.dtype))
        return emb

    def null_like(self, batch_shape: tuple[int, ...]) -> Tensor:
        """The "no action" vector expanded to ``[*batch_shape, dim]``."""
        return self.null.expand(*batch_shape, -1)
