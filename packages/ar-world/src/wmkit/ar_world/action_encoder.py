"""`ActionEncoder`: the one place where an action enters the token sequence.

An action reaches the transformer in one of two ways (``SequenceLayout.mode``):

- ``"tokens"`` (MineWorld, Guo et al. 2025): as ``K`` action tokens before the slot, one per
  component, their ids in the component's range of the layout's vocabulary
  (``SequenceLayout.action_offsets``), embedded like any other id;
- ``"embedding"`` (iVideoGPT, Wu et al. 2024): as a learned projection of the action's
  features added to the slot's input (iVideoGPT adds it before the frame; see ``layout``).

Unknown actions (the last context frame, action dropout, goal and prompt prefixes) are
*null*: the null ids in token mode, the learned ``null`` vector in embedding mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from wmkit.ar_world.layout import SequenceLayout

__all__ = ["ActionEncoder", "EmbedFn", "rename_action_keys"]

EmbedFn = Callable[[Tensor, Tensor], Tensor]
"""``embed(ids [B, S], roles [S]) -> [B, S, D]``: the model's id and role embeddings."""


class ActionEncoder(nn.Module):
    """Input embeddings of actions, in the mode ``layout`` names.

    Args:
        layout: the sequence layout (its ``spec`` and ``mode``).
        dim: the transformer width.
    """

    def __init__(self, layout: SequenceLayout, dim: int) -> None:
        super().__init__()
        self.layout = layout
        if layout.mode == "embedding":
            self.proj = nn.Linear(layout.spec.feature_dim, dim)
            self.null = nn.Parameter(torch.zeros(dim))

    def ids(self, actions: Tensor | None, null: Tensor | None, batch: int) -> Tensor:
        """Ids of ``A_t S_t`` for actions ``[*B, *action_shape]`` → ``[*B, K + 1]``: each
        component's token (continuous components binned, ``ActionSpec.to_tokens``) in its range
        of the vocabulary, then the slot id. ``actions=None`` (or ``null`` true) gives the null
        action's ids."""
        layout = self.layout
        device = layout.action_offsets.device if actions is None else actions.device
        shape = layout.spec.action_shape
        lead = (batch,) if actions is None else actions.shape[: actions.ndim - len(shape)]
        slot = torch.full((*lead, 1), layout.slot_id, dtype=torch.long, device=device)
        if layout.k == 0:
            return slot
        nulls = layout.action_null.to(device).expand(*lead, layout.k)
        if actions is None:
            return torch.cat([nulls, slot], dim=-1)
        ids = layout.spec.to_tokens(actions) + layout.action_offsets.to(device)  # [*B, K]
        if null is not None:
            ids = torch.where(null[..., None], nulls, ids)
        return torch.cat([ids, slot], dim=-1)

    def vector(self, actions: Tensor | None, null: Tensor | None, lead: tuple) -> Tensor:
        """Embedding mode: the action vector ``[*lead, D]`` added at the slot (``null`` true,
        or no ``actions``: the null vector)."""
        null_vec = self.null.expand(*lead, -1)
        if actions is None:
            return null_vec
        vec = self.proj(self.layout.spec.features(actions))
        return vec if null is None else torch.where(null[..., None], null_vec, vec)

    def embed_sequence(
        self,
        embed: EmbedFn,
        tokens: Tensor,
        actions: Tensor,
        null: Tensor | None,
        future: Tensor | None = None,
    ) -> Tensor:
        """Input embeddings ``[B, S, D]`` of whole steps (``SequenceLayout.build``), with the
        action vectors added at the slots in embedding mode."""
        ids, roles = self.layout.build(tokens, self.ids(actions, null, tokens.shape[0]), future)
        x = embed(ids, roles)  # [B, S, D]
        if self.layout.mode == "embedding":
            b, t = actions.shape[:2]
            slots = self.layout.slot_positions(t, x.device)
            extra = torch.zeros_like(x)
            extra[:, slots] = self.vector(actions, null, (b, t)).to(x.dtype)
            x = x + extra
        return x

    def slot_inputs(
        self, embed: EmbedFn, action: Tensor | None, b: int, device: torch.device
    ) -> Tensor:
        """Input embeddings ``[B, K + 1, D]`` of ``A_t S_t`` for ``action`` ``[B, ...]``
        (``None``: the null action)."""
        ids = self.ids(action, None, b)  # [B, K + 1]
        x = embed(ids, self.layout.action_slot_roles(device))  # [B, K + 1, D]
        if self.layout.mode == "embedding":
            extra = torch.zeros_like(x)
            extra[:, -1] = self.vector(action, None, (b,)).to(x.dtype)
            x = x + extra
        return x

    def pad(
        self, actions: list[Tensor | None], b: int, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """The actions between a window's frames (``None``: unknown), plus a null one after
        the last frame → ``(actions [B, T, ...], null bool [B, T])``."""
        spec = self.layout.spec
        filler = torch.zeros((b, *spec.action_shape), dtype=spec.dtype, device=device)
        if spec.kind == "continuous":
            filler = filler + torch.tensor(spec.low, device=device).reshape(spec.action_shape)
        padded = [a if a is not None else filler for a in actions] + [filler]
        null = torch.tensor([a is None for a in actions] + [True], device=device)
        return torch.stack(padded, dim=1), null[None].expand(b, len(padded))


def rename_action_keys(state: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Weights saved before ``ActionEncoder`` (``action_proj``, ``null_action`` on the model),
    renamed to ``action_encoder.proj`` and ``action_encoder.null``."""
    old = {f"{prefix}action_proj.": f"{prefix}action_encoder.proj.",
           f"{prefix}null_action": f"{prefix}action_encoder.null"}  # fmt: skip
    out = {}
    for key, value in state.items():
        for before, after in old.items():
            if key.startswith(before):
                key = after + key[len(before) :]
        out[key] = value
    return out
