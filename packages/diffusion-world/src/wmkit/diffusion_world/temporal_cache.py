"""History cache for the causalized diffusers UNets (``svd_unet``, ``unet3d``).

In a causalized UNet only the temporal layers mix frames: the causal temporal attentions
and the causal temporal convolutions (:mod:`~wmkit.diffusion_world.causal_layers`); every
other layer works on each frame alone. When a world model denoises the frame after a clean
history, the history's inputs to those layers do not change from one denoising step to the
next, so they are computed once:

- :meth:`UNetHistoryCache.history_kv` runs the UNet over the history frames and keeps, per
  temporal attention, its keys and values ``[B·H·W, heads, L, head_dim]`` and, per causal
  temporal convolution with a ``k``-frame kernel, the last ``k - 1`` frames of its input
  ``[B, C, k - 1, H, W]`` (zeros where the history is shorter, as the causal padding);
- :meth:`UNetHistoryCache.forward_next` runs the UNet on the new frame alone: each temporal
  attention attends to the kept keys and values followed by the new frame's, each temporal
  convolution reads the kept frames instead of its zero padding. It equals the full forward
  over ``history + new`` at the new frame (tested, both UNets);
- :meth:`UNetHistoryCache.append_kv` does the same and keeps the grown state, for the world
  model's ``carry_history``.

A denoising step then costs one frame's UNet instead of the window's. This is the DiT's
history cache (``dit.py``) for the UNets; Vid2World (arXiv:2505.14357) re-runs the whole
window at every denoising step.

The layers reach the cache through a context variable set only inside those three calls, so
``forward`` (training, uncached sampling) is unchanged. The keys of :class:`UNetHistory` are
the layers themselves: a history works only with the network that made it (checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor, nn

__all__ = ["UNetHistory", "UNetHistoryCache", "active_history"]

Mode = Literal["record", "read", "append"]


@dataclass(frozen=True)
class UNetHistory:
    """What a causal UNet's temporal layers keep of ``frames`` history frames of ``batch``
    clips: one tuple of tensors per temporal layer (see the module docstring)."""

    frames: int
    batch: int
    states: dict[nn.Module, tuple[Tensor, ...]] = field(repr=False)


class _Session:
    """One cached call: ``record`` fills a history from the frames run, ``read`` runs new
    frames after ``history``, ``append`` does both."""

    def __init__(self, mode: Mode, history: UNetHistory | None) -> None:
        self.mode, self.history = mode, history
        self.kept: dict[nn.Module, tuple[Tensor, ...]] = {}

    @property
    def first_frame(self) -> int:
        """Position of the first frame run (the history's length after ``read``)."""
        return 0 if self.history is None else self.history.frames

    def past(self, layer: nn.Module, rows: int) -> tuple[Tensor, ...] | None:
        """``layer``'s kept state for ``rows`` rows (a multiple of the history's: guidance
        repeats the batch, and the branches share the history); ``None`` in ``record``."""
        if self.history is None:
            return None
        state = self.history.states.get(layer)
        if state is None:
            raise ValueError(
                "this history was not recorded by this network (a temporal layer has no state "
                "in it); compute it with the same network's history_kv"
            )
        kept_rows = state[0].shape[0]
        if rows % kept_rows:
            raise ValueError(
                f"the new frames have {rows} rows in a temporal layer but the history holds "
                f"{kept_rows}; the batch must be a multiple of the history's"
            )
        reps = rows // kept_rows
        if reps == 1:
            return state
        return tuple(s.repeat(reps, *([1] * (s.ndim - 1))) for s in state)

    def keep(self, layer: nn.Module, *state: Tensor) -> None:
        """Keep ``layer``'s state after this call (``record`` and ``append``)."""
        if self.mode != "read":
            self.kept[layer] = state


_ACTIVE: ContextVar[_Session | None] = ContextVar("wmkit_unet_history", default=None)


def active_history() -> _Session | None:
    """The cached call in progress (``None`` outside :class:`UNetHistoryCache`'s methods)."""
    return _ACTIVE.get()


@contextmanager
def _session(mode: Mode, history: UNetHistory | None = None) -> Iterator[_Session]:
    session = _Session(mode, history)
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)


class UNetHistoryCache:
    """Mixin of :class:`~wmkit.diffusion_world.causalize.CausalSVDUNet` and
    :class:`~wmkit.diffusion_world.unet3d.CausalUNet3D`: the history cache entry points the
    world model calls (the same as ``SpatioTemporalDiT``'s). Inference only."""

    def history_kv(self, x: Tensor, timesteps: Tensor, cond: Tensor | None = None) -> UNetHistory:
        """The temporal layers' state after the history ``x [B, L, C, H, W]`` at
        ``timesteps [B, L]`` with ``cond [B, L, D]``."""
        with _session("record") as session:
            self(x, timesteps, cond)
        return UNetHistory(frames=x.shape[1], batch=x.shape[0], states=session.kept)

    def forward_next(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: UNetHistory
    ) -> Tensor:
        """The UNet's output for the frames ``x [B', T, C, H, W]`` that follow ``history``
        (``B'`` a multiple of its batch): equals ``forward`` over ``history + x`` at the last
        ``T`` frames."""
        self._check_history(x, history)
        with _session("read", history):
            return self(x, timesteps, cond)

    def append_kv(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: UNetHistory
    ) -> UNetHistory:
        """``history`` with the frames ``x [B, T, C, H, W]`` appended: equals ``history_kv``
        of all ``L + T`` frames, at the cost of ``T`` frames."""
        self._check_history(x, history)
        if x.shape[0] != history.batch:
            raise ValueError(
                f"append_kv: x has batch {x.shape[0]} but the history holds {history.batch}"
            )
        with _session("append", history) as session:
            self(x, timesteps, cond)
        return UNetHistory(
            frames=history.frames + x.shape[1], batch=history.batch, states=session.kept
        )

    def _check_history(self, x: Tensor, history: UNetHistory) -> None:
        if not isinstance(history, UNetHistory):
            raise TypeError(
                f"history must be a UNetHistory from history_kv; got {type(history).__name__}"
            )
        if x.ndim != 5:
            raise ValueError(f"x must be [B, T, C, H, W]; got {tuple(x.shape)}")
        if x.shape[0] % history.batch:
            raise ValueError(
                f"x has batch {x.shape[0]}, not a multiple of the history's {history.batch}"
            )
