"""`IVideoGPTTransformer`: iVideoGPT's Llama transformer with its optional action projection
(Wu et al. 2024, §3.2: actions are *added* to the embedding of the slot that opens each
future frame, rather than inserted as tokens).

Parameter names follow the released ``HeadModelWithAction`` state dict (``llm.model.*``,
``llm.lm_head.weight``, ``action_linear.{weight,bias}``), so an action-conditioned release
loads with ``strict=True``; an action-free release (plain ``LlamaForCausalLM`` keys
``model.*``, ``lm_head.weight``) loads through :meth:`IVideoGPTTransformer.load_released`.
"""

from __future__ import annotations

from torch import Tensor, nn

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.llama import LlamaConfig, LlamaLM

__all__ = ["IVideoGPTTransformer", "released_action_dim"]

ACTION_KEYS = ("action_linear.weight", "action_linear.bias")


def released_action_dim(state: dict[str, Tensor]) -> int | None:
    """The action size of a released transformer state dict (``action_linear.weight`` is
    ``[hidden, A]``), or ``None`` for an action-free one (no ``action_linear``)."""
    weight = state.get("action_linear.weight")
    return None if weight is None else int(weight.shape[1])


class IVideoGPTTransformer(nn.Module):
    """Llama over :class:`~wmkit.ar_world.ivideogpt_layout.IVideoGPTLayout` sequences.

    Args:
        llama: the transformer's shape (``vocab_size`` must equal the layout's).
        action_dim: size of a continuous action (``None``: action-free, no projection).
    """

    def __init__(self, llama: LlamaConfig, action_dim: int | None = None) -> None:
        super().__init__()
        if action_dim is not None and action_dim < 1:
            raise ValueError(f"action_dim must be >= 1 or None; got {action_dim}")
        self.llm = LlamaLM(llama)
        self.action_dim = action_dim
        self.action_linear = (
            nn.Linear(action_dim, llama.hidden_size) if action_dim is not None else None
        )

    @property
    def config(self) -> LlamaConfig:
        return self.llm.config

    def load_released(self, state: dict[str, Tensor]) -> None:
        """Load a released ``transformer/model.safetensors`` state dict (strict): action-free
        ``model.*``/``lm_head.weight`` or action-conditioned ``llm.*``/``action_linear.*``."""
        acts = [k for k in ACTION_KEYS if k in state]
        if acts and self.action_linear is None:
            raise ValueError(
                "the weights hold action_linear (an action-conditioned model) but this "
                "transformer was built with action_dim=None"
            )
        if not acts and self.action_linear is not None:
            raise ValueError(
                "the weights hold no action_linear (an action-free model) but this transformer "
                f"was built with action_dim={self.action_dim}"
            )
        if acts:
            self.load_state_dict(state, strict=True)
        else:
            self.llm.load_state_dict(state, strict=True)

    def action_embeddings(self, actions: Tensor) -> Tensor:
        """``action_linear`` of ``actions`` ``[..., A]`` → ``[..., D]``."""
        if self.action_linear is None:
            raise ValueError("this transformer is action-free (action_dim=None); pass no actions")
        if actions.shape[-1] != self.action_dim or not actions.is_floating_point():
            raise ValueError(
                f"actions must be float [..., {self.action_dim}]; got {actions.dtype} "
                f"{tuple(actions.shape)}"
            )
        return self.action_linear(actions.to(self.action_linear.weight.dtype))

    def embed(self, ids: Tensor, layout: IVideoGPTLayout, actions: Tensor | None = None) -> Tensor:
        """Input embeddings ``[B, L, D]`` of a sequence ``ids`` ``[B, L]`` starting with the
        prelude; with ``actions`` ``[B, T, A]`` (one per clip frame, ``T >= T0 - 1 + F``),
        action ``T0 - 1 + i`` is added at the ``sdf`` of future frame ``i``."""
        x = self.llm.embed(ids)  # [B, L, D]
        if (actions is None) != (self.action_linear is None):
            raise ValueError(
                "an action-conditioned transformer needs actions [B, T, A]"
                if actions is None
                else "this transformer is action-free (action_dim=None); pass no actions"
            )
        if actions is None:
            return x
        length = ids.shape[1]
        f = max(0, -(-(length - layout.prelude_length) // layout.frame_length))
        need = layout.context_frames - 1 + f
        if actions.ndim != 3 or actions.shape[0] != ids.shape[0] or actions.shape[1] < need:
            raise ValueError(
                f"actions must be [B={ids.shape[0]}, T >= {need}, {self.action_dim}] for a "
                f"sequence of {length} ids ({f} future frames after {layout.context_frames} "
                f"context frames); got {tuple(actions.shape)}"
            )
        pos = layout.action_positions(f, ids.device)  # [F]
        index = layout.action_indices(f, ids.device)  # [F]
        x = x.clone()
        x[:, pos] = x[:, pos] + self.action_embeddings(actions[:, index])  # [B, F, D]
        return x

    def forward(
        self, ids: Tensor, layout: IVideoGPTLayout, actions: Tensor | None = None
    ) -> Tensor:
        """Teacher-forced logits ``[B, L, V]`` of a sequence ``ids`` ``[B, L]`` (with
        ``actions`` ``[B, T, A]`` for an action-conditioned model; see :meth:`embed`)."""
        if ids.ndim != 2 or ids.is_floating_point():
            raise ValueError(f"ids must be long [B, L]; got {ids.dtype} {tuple(ids.shape)}")
        if layout.vocab_size != self.config.vocab_size:
            raise ValueError(
                f"layout vocabulary {layout.vocab_size} (n_vq + n_dyn + 2) differs from the "
                f"transformer's vocab_size {self.config.vocab_size}"
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= layout.vocab_size):
            raise ValueError(
                f"ids must be in [0, {layout.vocab_size}); got [{int(ids.min())}, {int(ids.max())}]"
            )
        return self.llm(embeds=self.embed(ids, layout, actions))
