"""The token sequence an autoregressive world model reads: frames, actions, slots.

Per step ``t``::

    F_t[0] … F_t[n-1]   A_t[0] … A_t[K-1]   S_t
    frame tokens (raster) action tokens      slot

- ``n = h·w`` frame tokens from the tokenizer (``tokens_shape(1, H, W)``).
- ``action_mode="tokens"`` (MineWorld): ``K = action_spec.num_tokens`` action tokens, one per
  component (continuous components as ``ActionSpec`` bins). ``action_mode="embedding"``
  (iVideoGPT): ``K = 0`` and the action is embedded and added at the slot.
- The slot ``S_t`` follows the action: its output predicts the reward and done of step
  ``t`` and the first token of ``F_{t+1}``.

Differences from the papers: MineWorld puts action tokens after the frame (as here) but has
no slot or reward; iVideoGPT puts its slot *before* each future frame and adds the action
there — we place it after the action so that the slot's output can predict the reward of that
action, which both layouts need. A compressive tokenizer (iVideoGPT, context frames with
``N`` tokens and future frames with ``n < N``) would give context and future steps different
``n``; this layout keeps one ``n`` for all steps for now (see the README's open items).

Every id lives in one vocabulary: frame ids ``[0, V)``, then each action component's ids
(plus one *null* id each, for unknown actions), then the slot id. A second, *role* index
(``[0, n + K]``: frame token ``j``, action component ``k``, slot) selects a learned role
embedding, so that the network knows where in the frame a token sits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wmkit.core import ActionSpec

__all__ = ["SequenceLayout"]


class SequenceLayout:
    """Ids, roles and positions of the frame/action/slot sequence (see the module docstring).

    Args:
        grid: ``(h, w)`` frame tokens per step.
        vocab_size: frame token vocabulary ``V``.
        action_spec: the actions.
        action_mode: ``"tokens"`` or ``"embedding"``.
    """

    def __init__(
        self, grid: tuple[int, int], vocab_size: int, action_spec: ActionSpec, action_mode: str
    ) -> None:
        if action_mode not in ("tokens", "embedding"):
            raise ValueError(f"action_mode must be 'tokens' or 'embedding'; got {action_mode!r}")
        self.h, self.w = int(grid[0]), int(grid[1])
        self.n = self.h * self.w
        self.vocab_size = int(vocab_size)
        self.spec = action_spec
        self.mode = action_mode
        self.k = action_spec.num_tokens if action_mode == "tokens" else 0
        self.step_len = self.n + self.k + 1
        sizes = action_spec.token_vocab_sizes if action_mode == "tokens" else ()
        offsets, start = [], self.vocab_size
        for size in sizes:
            offsets.append(start)
            start += size + 1  # + null id
        self.action_offsets = torch.tensor(offsets, dtype=torch.long)
        self.action_null = torch.tensor([o + s for o, s in zip(offsets, sizes)], dtype=torch.long)
        self.slot_id = start
        self.num_ids = start + 1
        self.num_roles = self.step_len

    # ------------------------------------------------------------------ pieces of a step
    def frame_roles(self, device: torch.device | None = None) -> Tensor:
        return torch.arange(self.n, device=device)

    def action_slot_roles(self, device: torch.device | None = None) -> Tensor:
        return torch.arange(self.n, self.step_len, device=device)

    def action_slot_ids(self, actions: Tensor | None, null: Tensor | None, batch: int) -> Tensor:
        """Ids of ``A_t S_t`` for actions ``[*B, *action_shape]`` → ``[*B, K + 1]``.

        ``actions=None`` (or ``null`` true) gives the null action ids.
        """
        device = self.action_offsets.device if actions is None else actions.device
        lead = (
            (batch,)
            if actions is None
            else actions.shape[: actions.ndim - len(self.spec.action_shape)]
        )
        slot = torch.full((*lead, 1), self.slot_id, dtype=torch.long, device=device)
        if self.k == 0:
            return slot
        nulls = self.action_null.to(device).expand(*lead, self.k)
        if actions is None:
            return torch.cat([nulls, slot], dim=-1)
        ids = self.spec.to_tokens(actions) + self.action_offsets.to(device)  # [*B, K]
        if null is not None:
            ids = torch.where(null[..., None], nulls, ids)
        return torch.cat([ids, slot], dim=-1)

    # ------------------------------------------------------------------ whole sequences
    def build(
        self, tokens: Tensor, actions: Tensor | None, null: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Frame tokens ``[B, T, h, w]`` and actions ``[B, T, ...]`` → ids ``[B, T·L]`` and
        roles ``[T·L]`` (``L = n + K + 1``), every step ending with its action and slot."""
        b, t = tokens.shape[:2]
        frame = tokens.reshape(b, t, self.n)
        acts = self.action_slot_ids(actions, null, b) if actions is not None else None
        if acts is None:
            acts = self.action_slot_ids(None, None, b)[:, None].expand(b, t, self.k + 1)
        ids = torch.cat([frame, acts], dim=-1).reshape(b, t * self.step_len)
        roles = torch.arange(self.step_len, device=tokens.device).repeat(t)
        return ids, roles

    def slot_positions(self, num_steps: int, device: torch.device | None = None) -> Tensor:
        """Positions of ``S_0 … S_{T-1}``."""
        return torch.arange(num_steps, device=device) * self.step_len + self.step_len - 1

    def predictor_positions(self, num_steps: int, device: torch.device | None = None) -> Tensor:
        """``[T - 1, n]``: the positions whose outputs predict ``F_1 … F_{T-1}`` (the slot
        before each frame, then the frame's own tokens but the last)."""
        base = self.slot_positions(num_steps - 1, device)  # [T - 1]
        return base[:, None] + torch.arange(self.n, device=device)[None, :]
