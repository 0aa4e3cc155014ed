"""`CompressiveContract`: the context / future split that both compressive tokenizers share.

A compressive tokenizer (iVideoGPT, Wu et al. 2024, arXiv:2405.15223, §3.1) gives each
**context** frame ``N = (H/s)·(W/s)`` tokens and each **future** frame ``n = N / p²``
tokens conditioned on the context. wmkit has two: :class:`~wmkit.tokenizers.compressive.
CompressiveTokenizer` (our own network) and :class:`~wmkit.tokenizers.ivideogpt_vq.
IVideoGPTTokenizer` (the released one, parameter for parameter). They differ in their
networks and in which contexts they accept; what a caller sees of the split is the same and
lives here: the ``Tokenizer`` protocol properties, which frames are context
(:meth:`~CompressiveContract.split`: the first ``T0`` or any distinct indices, e.g. the goal
frame first), and how ``decode`` reads the context indices of a ``Latents``.

A class mixes it in before ``nn.Module`` and provides ``s``, ``p``, ``in_channels``,
:meth:`~CompressiveContract.num_context_frames` and ``_context_grid``; it may narrow
``_context_count`` (iVideoGPT's fixed ``context_length``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from wmkit.core.protocols import Latents
from wmkit.core.video import check_video

__all__ = ["CompressiveContract", "FrameTokens"]


@dataclass(frozen=True)
class FrameTokens:
    """Tokens per frame: ``context`` (``N``) and ``future`` (``n``)."""

    context: int
    future: int


class CompressiveContract:
    """Protocol properties, the context / future split and input checks of a compressive
    tokenizer with spatial compression ``s``, future patch ``p`` and ``in_channels``."""

    s: int
    p: int
    in_channels: int

    # ------------------------------------------------------------------ protocol properties
    @property
    def kind(self) -> Literal["discrete", "continuous"]:
        return "discrete"

    @property
    def latent_channels(self) -> None:
        return None

    @property
    def spatial_compression(self) -> int:
        return self.s

    @property
    def future_spatial_compression(self) -> int:
        return self.s * self.p

    @property
    def temporal_compression(self) -> int:
        return 1

    # ------------------------------------------------------------------ hooks
    def num_context_frames(self, num_frames: int) -> int:
        """``T0`` that ``encode(video)`` uses without a context argument."""
        raise NotImplementedError(f"{type(self).__name__} must implement num_context_frames")

    def _context_grid(self, height: int, width: int) -> tuple[int, int]:
        """Context ids per column and row of a ``height × width`` frame; raises
        ``ValueError`` for a frame size the tokenizer cannot take."""
        raise NotImplementedError(f"{type(self).__name__} must implement _context_grid")

    def tokens_per_frame(self, height: int, width: int) -> FrameTokens:
        """Tokens per context frame (``N``) and per future frame (``n``) at ``height×width``."""
        h, w = self._context_grid(height, width)
        return FrameTokens(context=h * w, future=(h // self.p) * (w // self.p))

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Shape of ``encode(video).values`` (context ids) with the default context."""
        return (self.num_context_frames(num_frames), *self._context_grid(height, width))

    # ------------------------------------------------------------------ the split
    def _context_count(self, num_frames: int, context_frames: int | None) -> int:
        """``T0`` for ``context_frames`` (``None``: the default) of a ``num_frames`` clip."""
        n = self.num_context_frames(num_frames) if context_frames is None else context_frames
        if not 1 <= n <= num_frames:
            raise ValueError(f"context_frames must be in [1, {num_frames}]; got {n}")
        return n

    def split(
        self,
        num_frames: int,
        context_frames: int | None = None,
        context_indices: Sequence[int] | None = None,
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(context indices, future indices in time order) of a ``num_frames`` clip."""
        if context_frames is not None and context_indices is not None:
            raise ValueError("give context_frames or context_indices, not both")
        if context_indices is None:
            ctx = tuple(range(self._context_count(num_frames, context_frames)))
        else:
            ctx = tuple(int(i) for i in context_indices)
            if not ctx or len(set(ctx)) != len(ctx) or min(ctx) < 0 or max(ctx) >= num_frames:
                raise ValueError(
                    f"context_indices must be distinct frame indices in [0, {num_frames}); "
                    f"got {ctx}"
                )
            self._context_count(num_frames, len(ctx))
        return ctx, tuple(i for i in range(num_frames) if i not in set(ctx))

    @staticmethod
    def _unpack(latents: Latents | Tensor) -> tuple[Any, Tensor | None]:
        """(context ids, future ids) of what ``decode`` was given; bare ids have no future."""
        if isinstance(latents, Latents):
            return latents.values, latents.future
        return latents, None

    def _latents_split(
        self, latents: Latents | Tensor, t0: int, tf: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The split of ``t0`` context and ``tf`` future token frames given to ``decode``:
        ``latents.context_indices``, or the first ``t0`` frames for bare context ids."""
        given = isinstance(latents, Latents) and latents.context_indices is not None
        ctx = tuple(latents.context_indices) if given else tuple(range(t0))  # type: ignore[union-attr,arg-type]
        if len(ctx) != t0:
            raise ValueError(
                f"latents.context_indices has {len(ctx)} entries for {t0} context frames"
            )
        return self.split(t0 + tf, context_indices=ctx)

    def _no_future(self, context_ids: Tensor) -> Tensor:
        """Future ids of a clip without future frames: ``long [B, 0, h', w']``."""
        b, h, w = context_ids.shape[0], *context_ids.shape[-2:]
        return context_ids.new_zeros((b, 0, h // self.p, w // self.p))

    # ------------------------------------------------------------------ checks
    def _check_input(self, video: Tensor) -> None:
        check_video(video, "video", channels=self.in_channels)
        self._context_grid(video.shape[3], video.shape[4])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # type: ignore[attr-defined]
