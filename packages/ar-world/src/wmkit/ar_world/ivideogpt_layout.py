"""`IVideoGPTLayout`: the token sequence of iVideoGPT's transformer (Wu et al. 2024, §3.1).

A clip of ``T0`` context frames and ``F`` future frames, each context frame coded as an
``h × w`` grid of context-codebook ids and each future frame as an ``h' × w'`` grid of
dynamics-codebook ids (the compressive tokenizer), becomes one sequence::

    [ctx 0: N ids] [scf][ctx 1: N ids] … [scf][ctx T0-1: N ids]   (the prelude)
    [sdf][future 0: n ids] [sdf][future 1: n ids] …

with no BOS and positions ``0 … L - 1``. Context ids are ``[0, n_vq)``, dynamics ids are
shifted to ``[n_vq, n_vq + n_dyn)``, and the two slot ids follow: ``scf = n_vq + n_dyn``,
``sdf = scf + 1``. The prelude is ``(N + 1)·T0 - 1`` tokens (frame 0 has no slot before it),
and grids are flattened row-major. An action-conditioned model adds ``action_linear(a)`` to
the input embedding of the ``sdf`` that opens future frame ``i``, with ``a`` the action taken
after frame ``T0 - 1 + i`` (the action of the last frame is unused). A goal-conditioned model
uses the same layout with the goal frame as context frame 0.

Where wmkit's own compressive layout differs (``wmkit.ar_world.layout``): it puts a slot
after each frame's action rather than before each frame, and shares one id space with
reward and done slots; the two are separate classes so neither needs the other's branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

__all__ = ["IVideoGPTLayout"]


@dataclass(frozen=True)
class IVideoGPTLayout:
    """The id order, slot ids and action positions of iVideoGPT's sequence.

    Args:
        context_frames: ``T0``, context frames in the prelude (the tokenizer's
            ``context_length``; for goal conditioning the goal counts as one).
        context_grid: ``(h, w)`` of a context frame's ids (16×16 at 64×64 pixels).
        future_grid: ``(h', w')`` of a future frame's ids (4×4).
        context_vocab_size: ``n_vq``, the context codebook size.
        future_vocab_size: ``n_dyn``, the dynamics codebook size.
    """

    context_frames: int = 2
    context_grid: tuple[int, int] = (16, 16)
    future_grid: tuple[int, int] = (4, 4)
    context_vocab_size: int = 8192
    future_vocab_size: int = 8192

    def __post_init__(self) -> None:
        for name in ("context_grid", "future_grid"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"IVideoGPTLayout.{name} must be (h, w) >= 1; got {value}")
            object.__setattr__(self, name, value)
        for name in ("context_frames", "context_vocab_size", "future_vocab_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"IVideoGPTLayout.{name} must be >= 1; got {getattr(self, name)}")

    # ------------------------------------------------------------------ sizes and ids
    @property
    def context_tokens(self) -> int:
        """``N``: ids per context frame."""
        return self.context_grid[0] * self.context_grid[1]

    @property
    def future_tokens(self) -> int:
        """``n``: ids per future frame."""
        return self.future_grid[0] * self.future_grid[1]

    @property
    def scf(self) -> int:
        """The slot id before context frames 1 … T0-1."""
        return self.context_vocab_size + self.future_vocab_size

    @property
    def sdf(self) -> int:
        """The slot id before every future frame."""
        return self.scf + 1

    @property
    def vocab_size(self) -> int:
        """``n_vq + n_dyn + 2``: the transformer's vocabulary."""
        return self.sdf + 1

    @property
    def prelude_length(self) -> int:
        """``(N + 1)·T0 - 1``: the context frames' ids and slots."""
        return (self.context_tokens + 1) * self.context_frames - 1

    @property
    def frame_length(self) -> int:
        """``n + 1``: one future frame with its ``sdf``."""
        return self.future_tokens + 1

    def sequence_length(self, future_frames: int) -> int:
        """Length of the sequence of the context and ``future_frames`` future frames."""
        return self.prelude_length + self.frame_length * future_frames

    def max_future_frames(self, max_positions: int) -> int:
        """Most future frames whose ids fit in ``max_positions`` positions."""
        return max(0, (max_positions - self.prelude_length) // self.frame_length)

    # ------------------------------------------------------------------ positions
    def action_positions(self, future_frames: int, device: torch.device | str = "cpu") -> Tensor:
        """``long [F]``: the ``sdf`` positions, where future frame ``i``'s action is added."""
        i = torch.arange(future_frames, device=device)
        return self.prelude_length + self.frame_length * i

    def action_indices(self, future_frames: int, device: torch.device | str = "cpu") -> Tensor:
        """``long [F]``: which action of the clip (``T0 - 1 + i``) goes to future frame ``i``."""
        return self.context_frames - 1 + torch.arange(future_frames, device=device)

    def future_positions(self, future_frames: int, device: torch.device | str = "cpu") -> Tensor:
        """``long [F, n]``: the positions of each future frame's ids."""
        starts = self.action_positions(future_frames, device) + 1  # [F]
        return starts[:, None] + torch.arange(self.future_tokens, device=device)[None, :]

    # ------------------------------------------------------------------ ids
    def check_context(self, ids: Tensor, name: str = "context_ids") -> None:
        """``ids`` must be ``long [B, T0, h, w]`` in ``[0, n_vq)``."""
        _check_ids(ids, (self.context_frames, *self.context_grid), self.context_vocab_size, name)

    def check_future(self, ids: Tensor, name: str = "future_ids") -> None:
        """``ids`` must be ``long [B, F, h', w']`` in ``[0, n_dyn)`` (raw dynamics codes)."""
        _check_ids(ids, (None, *self.future_grid), self.future_vocab_size, name)

    def build(self, context_ids: Tensor, future_ids: Tensor | None = None) -> Tensor:
        """The sequence ``long [B, L]`` of ``context_ids`` ``[B, T0, h, w]`` and raw dynamics
        ``future_ids`` ``[B, F, h', w']`` (``None``: the prelude alone)."""
        self.check_context(context_ids)
        b = context_ids.shape[0]
        ctx = rearrange(context_ids, "b t h w -> b t (h w)")
        scf = ctx.new_full((b, self.context_frames, 1), self.scf)
        prelude = torch.cat([scf, ctx], dim=-1).flatten(1)[:, 1:]  # [B, (N+1)·T0 - 1]
        if future_ids is None:
            return prelude
        self.check_future(future_ids)
        if future_ids.shape[0] != b:
            raise ValueError(
                f"future_ids has batch size {future_ids.shape[0]} but context_ids has {b}"
            )
        fut = rearrange(future_ids, "b t h w -> b t (h w)") + self.context_vocab_size
        sdf = fut.new_full((*fut.shape[:2], 1), self.sdf)
        return torch.cat([prelude, torch.cat([sdf, fut], dim=-1).flatten(1)], dim=1)

    def prompt(self, context_ids: Tensor) -> Tensor:
        """The generation prompt ``long [B, prelude + 1]``: the prelude and the first ``sdf``."""
        prelude = self.build(context_ids)
        return torch.cat([prelude, prelude.new_full((prelude.shape[0], 1), self.sdf)], dim=1)

    def parse_future(self, ids: Tensor, future_frames: int | None = None) -> Tensor:
        """Raw dynamics ids ``long [B, F, h', w']`` read from a sequence ``ids`` ``[B, L]``
        that starts with the prelude (as generated: the slots between frames are not
        checked). Ids outside the dynamics range are clamped into it, as iVideoGPT's
        ``detokenize`` does with what an action-free model emits there.

        ``future_frames`` defaults to every complete future frame in ``ids``.
        """
        if ids.ndim != 2 or ids.is_floating_point():
            raise ValueError(f"ids must be long [B, L]; got {ids.dtype} {tuple(ids.shape)}")
        available = (ids.shape[1] + 1 - self.prelude_length) // self.frame_length
        f = available if future_frames is None else future_frames
        if f < 0 or f > available:
            raise ValueError(
                f"ids of length {ids.shape[1]} hold {max(available, 0)} complete future frames "
                f"after the {self.prelude_length}-token prelude; asked for {future_frames}"
            )
        return self.future_grid_of(ids[:, self.future_positions(f, ids.device)])

    def future_grid_of(self, ids: Tensor) -> Tensor:
        """Sequence ids of future frames ``[..., n]`` → raw dynamics ids ``[..., h', w']``,
        clamped into ``[0, n_dyn)`` (iVideoGPT's ``detokenize``)."""
        grid = (ids - self.context_vocab_size).clamp(0, self.future_vocab_size - 1)
        return grid.unflatten(-1, self.future_grid)


def _check_ids(ids: Tensor, shape: tuple[int | None, ...], vocab: int, name: str) -> None:
    want = "[B, " + ", ".join("F" if s is None else str(s) for s in shape) + "]"
    if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
        got = f"{ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be long {want}; got {got}")
    if ids.ndim != len(shape) + 1 or any(
        s is not None and d != s for d, s in zip(ids.shape[1:], shape, strict=True)
    ):
        raise ValueError(f"{name} must be long {want}; got shape {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(
            f"{name} must be in [0, {vocab}); got [{int(ids.min())}, {int(ids.max())}]"
        )
