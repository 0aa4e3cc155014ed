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
- With a compressive tokenizer (iVideoGPT), the first ``T0`` steps are *context* steps with
  ``N`` tokens from the context codebook (``V_c`` ids) and the later steps *future* steps with
  ``n < N`` tokens from the future codebook (``V_f`` ids); only future frames are predicted.

Differences from the papers: MineWorld puts action tokens after the frame (as here) but has
no slot or reward; iVideoGPT puts its slot *before* each future frame and adds the action
there — we place it after the action so that the slot's output can predict the reward of that
action, which both layouts need.

Every id lives in one vocabulary: frame ids ``[0, V)`` (compressive: context ids ``[0, V_c)``
then future ids ``[V_c, V_c + V_f)``), then each action component's ids (plus one *null* id
each, for unknown actions), then the slot id. A second, *role* index (frame token ``j``, then
compressive future token ``j``, action component ``k``, slot) selects a learned role
embedding, so that the network knows where in the frame a token sits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wmkit.core import ActionSpec

__all__ = ["SequenceLayout"]


class SequenceLayout:
    """Ids, roles and positions of the frame/action/slot sequence (see the module docstring).

    ``h, w, n, vocab_size`` describe the *predicted* frames (the future frames of a
    compressive layout); ``ch, cw, nc, context_vocab_size`` the context frames (the same
    numbers without a compressive tokenizer).

    Args:
        grid: ``(h, w)`` frame tokens per step (compressive: per context step).
        vocab_size: frame token vocabulary ``V`` (compressive: the context codebook ``V_c``).
        action_spec: the actions.
        action_mode: ``"tokens"`` or ``"embedding"``.
        future_grid: compressive only: ``(h', w')`` tokens per future step.
        future_vocab_size: compressive only: the future codebook ``V_f``.
        context_steps: compressive only: ``T0``, the context steps starting every sequence.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        vocab_size: int,
        action_spec: ActionSpec,
        action_mode: str,
        future_grid: tuple[int, int] | None = None,
        future_vocab_size: int | None = None,
        context_steps: int = 0,
    ) -> None:
        if action_mode not in ("tokens", "embedding"):
            raise ValueError(f"action_mode must be 'tokens' or 'embedding'; got {action_mode!r}")
        self.compressive = future_grid is not None
        if self.compressive and (not future_vocab_size or context_steps < 1):
            raise ValueError(
                "a compressive layout needs future_vocab_size and context_steps >= 1; got "
                f"{future_vocab_size}, {context_steps}"
            )
        self.ch, self.cw = int(grid[0]), int(grid[1])
        self.nc = self.ch * self.cw
        self.context_vocab_size = int(vocab_size)
        if self.compressive:
            self.h, self.w = int(future_grid[0]), int(future_grid[1])  # type: ignore[index]
            self.vocab_size = int(future_vocab_size)  # type: ignore[arg-type]
            self.t0 = int(context_steps)
            self.future_offset = self.context_vocab_size  # future ids follow context ids
            self.future_role_offset = self.nc
        else:
            self.h, self.w, self.vocab_size, self.t0 = self.ch, self.cw, self.context_vocab_size, 0
            self.future_offset = self.future_role_offset = 0
        self.n = self.h * self.w
        self.spec = action_spec
        self.mode = action_mode
        self.k = action_spec.num_tokens if action_mode == "tokens" else 0
        self.step_len = self.n + self.k + 1  # a predicted step
        self.context_step_len = self.nc + self.k + 1
        self.action_role_start = self.future_role_offset + self.n
        sizes = action_spec.token_vocab_sizes if action_mode == "tokens" else ()
        offsets, start = [], self.future_offset + self.vocab_size
        for size in sizes:
            offsets.append(start)
            start += size + 1  # + null id
        self.action_offsets = torch.tensor(offsets, dtype=torch.long)
        self.action_null = torch.tensor([o + s for o, s in zip(offsets, sizes)], dtype=torch.long)
        self.slot_id = start
        self.num_ids = start + 1
        self.num_roles = self.action_role_start + self.k + 1

    # ------------------------------------------------------------------ pieces of a step
    def frame_roles(self, device: torch.device | None = None) -> Tensor:
        """Roles of a predicted frame's tokens."""
        return torch.arange(self.n, device=device) + self.future_role_offset

    def action_slot_roles(self, device: torch.device | None = None) -> Tensor:
        return torch.arange(self.action_role_start, self.num_roles, device=device)

    def step_start(self, t: int) -> int:
        """Sequence position where step ``t`` begins."""
        if t <= self.t0:
            return t * self.context_step_len
        return self.t0 * self.context_step_len + (t - self.t0) * self.step_len

    # ------------------------------------------------------------------ whole sequences
    def build(
        self, tokens: Tensor, action_ids: Tensor, future: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Frame tokens ``[B, T, h, w]`` and each step's action and slot ids ``[B, T, K + 1]``
        (``ActionEncoder.ids``) → ids ``[B, S]`` and roles ``[S]``, every step ending with its
        action and slot. Compressive: ``tokens`` are the ``T0`` context steps ``[B, T0, ch,
        cw]`` and ``future`` the rest ``[B, T - T0, h, w]``; ``action_ids`` cover all ``T``
        steps."""
        b, tc = tokens.shape[:2]
        if self.compressive and tc != self.t0:
            raise ValueError(f"expected {self.t0} context steps; got {tc}")
        parts = [tokens.reshape(b, tc, self.nc)]
        roles = [torch.arange(self.nc, device=tokens.device).expand(tc, -1)]
        if future is not None:
            if not self.compressive:
                raise ValueError("future tokens need a compressive layout")
            tf = future.shape[1]
            parts.append(future.reshape(b, tf, self.n) + self.future_offset)
            roles.append(self.frame_roles(tokens.device).expand(tf, -1))
        tail = self.action_slot_roles(tokens.device)
        ids = [torch.cat([f, action_ids[:, i : i + f.shape[1]]], dim=-1).flatten(1)
               for i, f in zip((0, tc), parts)]  # fmt: skip
        role = [torch.cat([r, tail.expand(r.shape[0], -1)], dim=-1).flatten() for r in roles]
        return torch.cat(ids, dim=1), torch.cat(role)

    def check_tokens(self, tokens: Tensor, future: Tensor | None) -> int:
        """Check a clip's ids (``tokens`` ``[B, T, ch, cw]``; compressive: ``T0`` context steps
        and ``future`` ``[B, T - T0, h, w]``) and return its number of steps ``T``."""
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (self.ch, self.cw):
            raise ValueError(
                f"tokens must be [B, T, {self.ch}, {self.cw}]; got {tuple(tokens.shape)}"
            )
        if self.compressive:
            if future is None or tokens.shape[1] != self.t0:
                raise ValueError(
                    f"a compressive layout needs tokens [B, {self.t0}, ...] (context) and "
                    f"future_tokens; got tokens {tuple(tokens.shape)}, future_tokens "
                    f"{None if future is None else tuple(future.shape)}"
                )
            if future.ndim != 4 or tuple(future.shape[2:]) != (self.h, self.w):
                raise ValueError(
                    f"future_tokens must be [B, T - T0, {self.h}, {self.w}]; got "
                    f"{tuple(future.shape)}"
                )
        elif future is not None:
            raise ValueError("future_tokens need a compressive tokenizer")
        return tokens.shape[1] + (0 if future is None else future.shape[1])

    def slot_positions(self, num_steps: int, device: torch.device | None = None) -> Tensor:
        """Positions of ``S_0 … S_{T-1}``."""
        return torch.tensor(
            [self.step_start(t + 1) - 1 for t in range(num_steps)], device=device, dtype=torch.long
        )

    def predictor_positions(self, num_steps: int, device: torch.device | None = None) -> Tensor:
        """``[T - first, n]``: the positions whose outputs predict ``F_first … F_{T-1}``
        (``first = 1``, compressive ``T0``): the slot before each frame, then the frame's own
        tokens but the last."""
        first = max(self.t0, 1)
        base = self.slot_positions(num_steps - 1, device)[first - 1 :]  # [T - first]
        return base[:, None] + torch.arange(self.n, device=device)[None, :]
