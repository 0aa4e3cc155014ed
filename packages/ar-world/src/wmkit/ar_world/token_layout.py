"""`TokenLayout`: the layout component of an ``ARWorldModel``: which sequence layout its
tokenizer's grids and actions are laid out in.

The component is the choice a config makes (how an action enters the sequence, how many
context steps a compressive tokenizer takes); :meth:`TokenLayout.build` binds it to the
tokenizer's grids and vocabularies and the action space, giving the
:class:`~wmkit.ar_world.layout.SequenceLayout` the model reads. A different layout is a
subclass whose ``build`` returns a different ``SequenceLayout``, named by ``class_path``.
"""

from __future__ import annotations

from typing import Any, Literal

from wmkit.ar_world.frame_codec import FrameCodec
from wmkit.ar_world.layout import SequenceLayout
from wmkit.core import ActionSpec
from wmkit.core.components import init_config

__all__ = ["TokenLayout"]


class TokenLayout:
    """Frames, actions and slots per step (``wmkit.ar_world.layout``).

    Args:
        action_mode: ``"tokens"`` (MineWorld: ``K`` action tokens per step) or
            ``"embedding"`` (iVideoGPT: the action embedded and added at the slot); see
            ``ActionEncoder``.
        context_frames: compressive tokenizers only: ``T0`` context steps (default: the
            tokenizer's ``default_context_frames``, else 1).
    """

    def __init__(
        self,
        action_mode: Literal["tokens", "embedding"] = "tokens",
        context_frames: int | None = None,
    ) -> None:
        if action_mode not in ("tokens", "embedding"):
            raise ValueError(f"action_mode must be 'tokens' or 'embedding'; got {action_mode!r}")
        self.action_mode, self.context_frames = action_mode, context_frames

    def build(self, codec: FrameCodec, action_spec: ActionSpec, max_frames: int) -> SequenceLayout:
        """The sequence layout of ``codec``'s tokenizer grids for ``action_spec`` in windows of
        ``max_frames`` steps."""
        tok = codec.tokenizer
        shape = tok.tokens_shape(1, *codec.frame_size)
        if len(shape) != 3:
            raise ValueError(f"tokenizer.tokens_shape(1, H, W) must be (1, h, w); got {shape}")
        compressive: dict[str, Any] = {}
        if codec.compressive:
            t0 = self.context_frames or getattr(tok, "default_context_frames", None) or 1
            if not 1 <= t0 < max_frames:
                raise ValueError(f"context_frames must be in [1, max_frames - 1]; got {t0}")
            fshape = tok.future_tokens_shape(t0 + 1, *codec.frame_size, t0)
            compressive = {
                "future_grid": (fshape[1], fshape[2]),
                "future_vocab_size": tok.future_vocab_size,
                "context_steps": t0,
            }
        return SequenceLayout(
            (shape[1], shape[2]), tok.vocab_size, action_spec, self.action_mode, **compressive
        )

    def to_config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}`` this layout is rebuilt from (``config.json``)."""
        return init_config(self, TokenLayout)
