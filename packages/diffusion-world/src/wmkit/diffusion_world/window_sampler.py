"""``WindowSampler``: the next frame after a history, in a sliding or a carried window.

A world model's ``step`` hands it the model-space history and conditions; it runs the
objective's next-frame sampler (:mod:`~wmkit.diffusion_world.sampler`) on the
:class:`~wmkit.diffusion_world.frame_denoiser.FrameDenoiser`, either over the last
``context_window - 1`` frames (the history's cache computed once per frame) or, with
``carry_history``, over a cache carried from frame to frame and extended by each new frame
(MineWorld's cache refresh when the window is full). With a residual denoiser it samples the
change from the last history frame and adds it back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.diffusion_world.frame_denoiser import FrameDenoiser
from wmkit.diffusion_world.sampler import Denoiser

__all__ = ["WindowSampler"]


class WindowSampler:
    """The frame after a history, with the denoiser and the objective's ``sampler``.

    Args:
        denoiser: the world model's denoiser.
        sampler: the objective's next-frame sampler (``sample(denoise, history,
            history_cond, cond, null_cond)``).
        context_window: frames the network sees at once.
        carry_history: carry the history cache from frame to frame.
    """

    def __init__(
        self, denoiser: FrameDenoiser, sampler: Any, context_window: int, carry_history: bool
    ) -> None:
        self.denoiser, self.sampler = denoiser, sampler
        self.context_window, self.carry_history = context_window, carry_history

    def next_frame(
        self,
        hist: Tensor,
        hist_cond: Tensor,
        cond: Tensor,
        null: Tensor,
        kv: Tensor | None,
        extend: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """The frame after ``hist [B, L, c, h, w]`` (conditions ``hist_cond [B, L, D]``, the new
        frame's ``cond [B, D]``, the "no action" ``null [B, D]``) → ``(new frame [B, c, h, w],
        carried cache or None)``. ``extend=False``: the carried cache is not extended with the
        new frame (returns None)."""
        if self.carry_history:
            return self._carried(hist, hist_cond, cond, null, kv, extend)
        if self.denoiser.residual:
            base = self.denoiser.bases(torch.cat([hist, hist[:, -1:]], dim=1))  # [B, L + 1, ...]
            denoise = _ResidualDenoiser(self.denoiser, base)
            change = self.sampler.sample(denoise, hist - base[:, :-1], hist_cond, cond, null)
            return hist[:, -1] + change, None  # [B, c, h, w]
        return self.sampler.sample(self.denoiser, hist, hist_cond, cond, null), None

    def _carried(
        self,
        hist: Tensor,
        hist_cond: Tensor,
        cond: Tensor,
        null: Tensor,
        kv: Tensor | None,
        extend: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """``carry_history``: the frame after ``hist [B, L, ...]`` from the carried history
        cache ``kv`` (``None``: encoded here) → ``(new frame [B, c, h, w], kv with the new
        frame appended)``; ``kv`` is ``None`` when the window is full (``L + 1`` frames of
        history would not leave room for the next frame): ``step`` then refreshes. With
        ``extend=False`` (a one-off sample) the cache is not extended and ``None`` returned."""
        denoiser = self.denoiser
        b, length = hist.shape[:2]
        clean = torch.zeros(b, length, device=hist.device)
        base = denoiser.bases(torch.cat([hist, hist[:, -1:]], dim=1)) if denoiser.residual else None
        history = hist - base[:, :-1] if base is not None else hist
        if kv is None:
            kv = denoiser.history_kv(history, clean, hist_cond, base)
        step = denoiser.denoise_next(kv, None if base is None else base[:, -1:])
        out = self.sampler.sample(_PreparedHistory(step), history, hist_cond, cond, null)
        new = hist[:, -1] + out if base is not None else out  # [B, c, h, w]
        if length + 1 >= self.context_window or not extend:
            return new, None
        entry = (out if base is not None else new)[:, None]  # as the history holds it
        entry_base = hist[:, -1:] if base is not None else None
        return new, denoiser.append_kv(entry, clean[:, :1], cond[:, None], kv, entry_base)


class _PreparedHistory:
    """``carry_history``: a denoiser whose history cache is already there; the samplers call
    ``prepare_history`` (``next_frame_denoiser``) and get the one-frame denoiser back."""

    history_prepared = True

    def __init__(self, denoise_next: Denoiser) -> None:
        self.denoise_next = denoise_next

    def __call__(self, x: Tensor, levels: Tensor, cond: Tensor) -> Tensor:
        raise RuntimeError("carry_history: the whole window is never re-run")  # pragma: no cover

    def prepare_history(
        self, history: Tensor, history_levels: Tensor, history_cond: Tensor
    ) -> Denoiser:
        return self.denoise_next


class _ResidualDenoiser:
    """A residual denoiser of frame changes relative to ``base`` ``[B, L + 1, ...]`` (the clean
    previous frames; guidance repeats the batch), with the history cache of
    :meth:`FrameDenoiser.prepare_history`."""

    def __init__(self, model: FrameDenoiser, base: Tensor) -> None:
        self.model, self.base = model, base

    def __call__(self, x: Tensor, levels: Tensor, cond: Tensor) -> Tensor:
        reps = x.shape[0] // self.base.shape[0]
        return self.model(x, levels, cond, base=self.base.repeat(reps, 1, 1, 1, 1))

    def prepare_history(
        self, history: Tensor, history_levels: Tensor, history_cond: Tensor
    ) -> Denoiser | None:
        return self.model.prepare_history(history, history_levels, history_cond, self.base)
