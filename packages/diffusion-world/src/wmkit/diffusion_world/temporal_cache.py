"""History cache for the causalized diffusers networks (``svd_unet``, ``unet3d``, ``wan``).

In a causalized network only some layers mix frames, and only causally: the UNets' temporal
attentions and temporal convolutions (:mod:`~wmkit.diffusion_world.causal_layers`), Wan's
block-causal self-attention (:mod:`~wmkit.diffusion_world.wan`); every other layer works on
each frame (or token) alone. When a world model denoises the frame after a clean history, the
history's inputs to those layers do not change from one denoising step to the next, so they
are computed once:

- :meth:`TemporalHistoryCache.history_kv` runs the network over the history frames and keeps,
  per frame-mixing attention, its keys and values (UNets ``[B·H·W, heads, L, head_dim]``,
  Wan ``[B, heads, L·tokens, head_dim]``, after RoPE) and, per causal temporal convolution
  with a ``k``-frame kernel, the last ``k - 1`` frames of its input ``[B, C, k - 1, H, W]``
  (zeros where the history is shorter, as the causal padding);
- :meth:`TemporalHistoryCache.forward_next` runs the network on the new frames alone: each
  attention attends to the kept keys and values followed by the new frames' (causally among
  them), each convolution reads the kept frames instead of its zero padding, and position
  embeddings over time (SVD's, Wan's RoPE) start at the history's length. It equals the full
  forward over ``history + new`` at the new frames (tested, all three networks);
- :meth:`TemporalHistoryCache.append_kv` does the same and keeps the grown state, for the
  world model's ``carry_history``.

A denoising step then costs one frame's pass instead of the window's. This is the DiT's
history cache (``dit.py``) for the diffusers networks; Vid2World (arXiv:2505.14357) re-runs
the whole window at every denoising step.

The layers reach the cache through a context variable set only inside those three calls, so
``forward`` (training, uncached sampling) is unchanged. The keys of :class:`TemporalHistory`
are the layers themselves: a history works only with the network that made it (checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor, nn

__all__ = ["TemporalHistory", "TemporalHistoryCache", "active_history"]

Mode = Literal["record", "read", "append"]


@dataclass(frozen=True)
class TemporalHistory:
    """What a causal network's frame-mixing layers keep of ``frames`` history frames of
    ``batch`` clips: one tuple of tensors per layer (see the module docstring)."""

    frames: int
    batch: int
    states: dict[nn.Module, tuple[Tensor, ...]] = field(repr=False)


class _Session:
    """One cached call: ``record`` fills a history from the frames run, ``read`` runs new
    frames after ``history``, ``append`` does both."""

    def __init__(self, mode: Mode, history: TemporalHistory | None) -> None:
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
                "this history was not recorded by this network (a frame-mixing layer has no "
                "state in it); compute it with the same network's history_kv"
            )
        kept_rows = state[0].shape[0]
        if rows % kept_rows:
            raise ValueError(
                f"the new frames have {rows} rows in a frame-mixing layer but the history holds "
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
    """The cached call in progress (``None`` outside :class:`TemporalHistoryCache`'s methods)."""
    return _ACTIVE.get()


@contextmanager
def _session(mode: Mode, history: TemporalHistory | None = None) -> Iterator[_Session]:
    session = _Session(mode, history)
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)


class TemporalHistoryCache:
    """Mixin of :class:`~wmkit.diffusion_world.causalize.CausalSVDUNet`,
    :class:`~wmkit.diffusion_world.unet3d.CausalUNet3D` and
    :class:`~wmkit.diffusion_world.wan.CausalWanTransformer`: the history cache entry points
    the world model calls (the same as ``SpatioTemporalDiT``'s). Inference only."""

    def history_kv(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None = None
    ) -> TemporalHistory:
        """The frame-mixing layers' state after the history ``x [B, L, C, H, W]`` at
        ``timesteps [B, L]`` with ``cond [B, L, D]``."""
        with _session("record") as session:
            self(x, timesteps, cond)
        return TemporalHistory(frames=x.shape[1], batch=x.shape[0], states=session.kept)

    def forward_next(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: TemporalHistory
    ) -> Tensor:
        """The UNet's output for the frames ``x [B', T, C, H, W]`` that follow ``history``
        (``B'`` a multiple of its batch): equals ``forward`` over ``history + x`` at the last
        ``T`` frames."""
        self._check_history(x, history)
        with _session("read", history):
            return self(x, timesteps, cond)

    def append_kv(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: TemporalHistory
    ) -> TemporalHistory:
        """``history`` with the frames ``x [B, T, C, H, W]`` appended: equals ``history_kv``
        of all ``L + T`` frames, at the cost of ``T`` frames."""
        self._check_history(x, history)
        if x.shape[0] != history.batch:
            raise ValueError(
                f"append_kv: x has batch {x.shape[0]} but the history holds {history.batch}"
            )
        with _session("append", history) as session:
            self(x, timesteps, cond)
        return TemporalHistory(
            frames=history.frames + x.shape[1], batch=history.batch, states=session.kept
        )

    def _check_history(self, x: Tensor, history: TemporalHistory) -> None:
        if not isinstance(history, TemporalHistory):
            raise TypeError(
                f"history must be a TemporalHistory from history_kv; got {type(history).__name__}"
            )
        if x.ndim != 5:
            raise ValueError(f"x must be [B, T, C, H, W]; got {tuple(x.shape)}")
        if x.shape[0] % history.batch:
            raise ValueError(
                f"x has batch {x.shape[0]}, not a multiple of the history's {history.batch}"
            )
