"""`ARWorldModel`: an autoregressive transformer world model over frame, action and reward
tokens (iVideoGPT, Wu et al. 2024; MineWorld, Guo et al. 2025), usable through
``wmkit.core.WorldModel``.

Frames go through any frozen discrete ``wmkit.core.Tokenizer``; the transformer predicts the
next frame's tokens in the order its decoder strategy draws them (``RasterDecoder``,
``DiagonalDecoder``, ``CrossFrameDecoder``), and a reward and done at each step's slot. Where
an action enters the sequence is the ``ActionEncoder``'s business; the order of ids, roles and
positions is the ``SequenceLayout``'s.

A *compressive* tokenizer (iVideoGPT: ``encode(video, context_frames=T0)`` gives ``N`` tokens
per context frame in ``Latents.values`` and ``n < N`` per future frame in ``Latents.future``;
it exposes ``future_vocab_size`` and ``future_tokens_shape``) gives the compressive layout:
``T0`` context steps, then future steps, only future frames predicted, and every future frame
decoded from its tokens together with the context tokens and the observed context frames
(``Latents.context_frames``). When the window is full the newest ``T0`` frames become the new
context (re-encoded), so play goes on forever. Goal and video-prompt prefixes need the
per-frame layout.

A causal tokenizer with temporal compression ``k > 1`` (VidTok FSQ 4x) makes each sequence
step a latent of ``k`` frames, conditioned on the ``k`` actions before it together
(:mod:`~wmkit.ar_world.latent_steps`; MineWorld and iVideoGPT are per-frame): ``step`` buffers
actions and serves one frame per call, ``k - 1`` actions behind (:mod:`wmkit.core.latent_steps`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from wmkit.ar_world.action_encoder import ActionEncoder, rename_action_keys
from wmkit.ar_world.context_state import compressive_state, context_state
from wmkit.ar_world.frame_codec import FrameCodec, load_tokenizer
from wmkit.ar_world.frozen_tokenizer import FrozenTokenizerMixin
from wmkit.ar_world.latent_steps import (
    check_latent_decoder,
    decode_latent,
    latent_context_state,
    step_latent,
)
from wmkit.ar_world.legacy_config import upgrade_flat_config
from wmkit.ar_world.raster_decoding import RasterDecoder
from wmkit.ar_world.sampling import Sampler
from wmkit.ar_world.sizes import transformer_spec
from wmkit.ar_world.state import ARState, ARWorldModelOutput
from wmkit.ar_world.token_decoder import TokenDecoder
from wmkit.ar_world.token_layout import TokenLayout
from wmkit.ar_world.transformer import merge_gate_up
from wmkit.core import (
    ActionSpec,
    BufferedState,
    LatentStep,
    PretrainedMixin,
    Rollout,
    StepOutput,
    StepwiseRolloutMixin,
    WorldState,
    buffered_rollout,
    buffered_step,
    check_world_model_inputs,
    start_buffered,
    step_action_spec,
)
from wmkit.core.components import build_component, record_components

__all__ = ["TOKENIZER_SUBDIR", "ARState", "ARWorldModel", "ARWorldModelOutput"]

TOKENIZER_SUBDIR = "tokenizer"
"""``save_pretrained`` writes the frozen tokenizer here, beside the world model's files."""


class ARWorldModel(FrozenTokenizerMixin, nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """Llama-style decoder over ``[frame tokens][action tokens][slot]`` steps, composed of a
    transformer, a sequence layout and a decoding strategy passed in.

    Each component is an object or its ``{"class_path", "init_args"}``
    (:mod:`~wmkit.ar_world.components`); ``save_pretrained`` records each as the latter.

    Args:
        action_spec: the actions it takes.
        tokenizer: a frozen discrete tokenizer, or the directory it was saved to (loaded with
            ``wmkit.core.load_pretrained``): per-frame, or causal with temporal compression
            ``k`` and one grid per latent (then each step is a latent of ``k`` frames).
            ``save_pretrained`` saves it in the subdirectory ``tokenizer/`` and records
            ``"./tokenizer"``, which ``from_pretrained`` resolves against the model's
            directory.
        frame_size: ``(H, W)`` of the frames.
        transformer: the network over input embeddings ``[B, S, D]`` (default: the ``tiny``
            :class:`~wmkit.ar_world.transformer.Transformer`); another network needs what
            ``Transformer`` has: ``dim``, ``forward(x, positions, cache)``, ``new_cache``,
            ``compiled_decoding`` and ``compile_decoding``.
        layout: the sequence layout (default :class:`~wmkit.ar_world.token_layout.TokenLayout`
            with action tokens).
        decoder: how ``step`` and ``rollout`` draw a frame's tokens, with the KV cache, window
            refresh, action guidance and CUDA graphs (default
            :class:`~wmkit.ar_world.raster_decoding.RasterDecoder`).
        max_frames: context window in sequence steps (the training clip length): frames, or
            latents with ``k > 1`` (a clip of ``1 + (max_frames - 1)·k`` frames).
    """

    frozen_components = ("tokenizer",)  # saved in tokenizer/ (PretrainedMixin)

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The flat arguments of 0.1.x (``size``, ``action_mode``, ``decoding``, ``window``,
        ``temperature``, ...) as ``transformer``, ``layout`` and ``decoder`` specs."""
        return upgrade_flat_config(config)

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved with SwiGLU's separate ``gate``/``up`` matrices, merged; the
        embedding-mode action weights of before ``ActionEncoder``, renamed."""
        return rename_action_keys(merge_gate_up(state, "transformer."))

    def __init__(
        self,
        action_spec: ActionSpec,
        tokenizer: str | nn.Module,
        frame_size: tuple[int, int] = (16, 16),
        transformer: dict[str, Any] | nn.Module | None = None,
        layout: dict[str, Any] | TokenLayout | None = None,
        decoder: dict[str, Any] | TokenDecoder | None = None,
        max_frames: int = 8,
    ) -> None:
        super().__init__()
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2; got {max_frames}")
        specs = {
            "transformer": transformer_spec() if transformer is None else transformer,
            "layout": TokenLayout() if layout is None else layout,
            "decoder": RasterDecoder() if decoder is None else decoder,
        }
        net = build_component(specs["transformer"], nn.Module, "transformer")
        if not isinstance(getattr(net, "dim", None), int):
            raise ValueError(f"the transformer {type(net).__name__} has no int dim (its width)")
        token_layout = build_component(specs["layout"], TokenLayout, "layout")
        self.decoder: TokenDecoder = build_component(specs["decoder"], TokenDecoder, "decoder")
        self.decoder.attach(net, max_frames)
        if self._hub_mixin_config is not None:  # what save_pretrained writes
            built = {"transformer": net, "layout": token_layout, "decoder": self.decoder}
            self._hub_mixin_config = record_components(self._hub_mixin_config, specs, built)
        action_spec = ActionSpec.coerce(action_spec, "ARWorldModel action_spec")
        self._action_spec = action_spec
        self.__dict__["tokenizer"] = load_tokenizer(tokenizer, latent_steps=True)  # frozen
        k = self.frames_per_step
        check_latent_decoder(self.decoder, k)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.codec = FrameCodec(self.tokenizer, self.frame_size)
        self.compressive = self.codec.compressive
        self.layout = token_layout.build(self.codec, step_action_spec(action_spec, k), max_frames)
        self.max_frames = max_frames
        dim = net.dim
        self.embed = nn.Embedding(self.layout.num_ids, dim)
        self.role = nn.Embedding(self.layout.num_roles, dim)
        self.action_encoder = ActionEncoder(self.layout, dim)
        self.transformer = net
        self.frame_head = nn.Linear(dim, self.layout.vocab_size, bias=False)
        self.reward_head = nn.Linear(dim, k)  # a latent step's k rewards
        self.done_head = nn.Linear(dim, k)
        self.apply(_init_weights)
        self._register_load_state_dict_pre_hook(_rename_old_keys)  # Lightning checkpoints

    # ------------------------------------------------------------------ nn.Module plumbing
    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def frames_per_step(self) -> int:
        """Frames per sequence step: the tokenizer's temporal compression ``k``."""
        return int(self.tokenizer.temporal_compression)

    @property
    def tokens_per_frame(self) -> int:
        return self.layout.n

    @property
    def sampler(self) -> Sampler:
        return self.decoder.sampler

    @property
    def refresh_keep(self) -> int:
        """Frames the decoder keeps when the window is full."""
        return self.decoder.frames_kept(self.max_frames)

    def _apply(self, fn: Any, recurse: bool = True) -> ARWorldModel:
        super()._apply(fn, recurse)  # the tokenizer moves too (FrozenTokenizerMixin)
        self.decoder.release()  # captured graphs point at the old parameters
        return self

    def embed_ids(self, ids: Tensor, roles: Tensor) -> Tensor:
        """Input embeddings ``[B, S, D]`` of ids ``[B, S]`` in roles ``[S]``."""
        return self.embed(ids) + self.role(roles)  # [B, S, D]

    # ------------------------------------------------------------------ frames <-> tokens
    def encode_frames(self, frames: Tensor, name: str = "frames") -> Tensor:
        """Frames ``[B, T, C, H, W]`` in [-1, 1] → token ids ``[B, T, h, w]`` (frozen; each
        frame as a context frame with a compressive tokenizer)."""
        return self.codec.encode(frames, name)

    def encode_clip(self, frames: Tensor, name: str = "frames") -> tuple[Tensor, Tensor | None]:
        """A training clip ``[B, T, C, H, W]`` → ``(tokens, future)``: per-frame layout
        ``([B, T, h, w], None)``; compressive ``([B, T0, N-grid], [B, T - T0, n-grid])``."""
        if not self.compressive:
            return self.encode_frames(frames, name), None
        return self.codec.encode_clip(frames, self.layout.t0, name)

    def forward(
        self,
        tokens: Tensor,
        actions: Tensor,
        null_actions: Tensor | None = None,
        future_tokens: Tensor | None = None,
    ) -> ARWorldModelOutput:
        """Teacher-forced pass over a clip.

        Args:
            tokens: frame token ids ``long [B, T, h, w]`` (``encode_frames`` or a token cache);
                compressive: the ``T0`` context frames' ids ``[B, T0, ch, cw]``.
            actions: ``[B, T, *action_shape]``; action ``t`` follows frame ``t`` (``k > 1``:
                each latent's chunk of ``k`` actions, ``step_action_spec``).
            null_actions: optional ``bool [B, T]``: replace those actions by the null action
                (action dropout, so the model also works without context actions).
            future_tokens: compressive only: future frames' ids ``[B, T - T0, h, w]``
                (``encode_clip``).
        """
        t = self.layout.check_tokens(tokens, future_tokens)
        b = tokens.shape[0]
        if t > self.max_frames:
            steps = "frames" if self.frames_per_step == 1 else "latents"
            raise ValueError(f"clip has {t} {steps} but max_frames is {self.max_frames}")
        self.layout.spec.validate(actions, name="actions")
        if tuple(actions.shape[:2]) != (b, t):
            raise ValueError(f"actions must be [B, T, ...] = {(b, t)}; got {tuple(actions.shape)}")
        x = self.action_encoder.embed_sequence(
            self.embed_ids, tokens, actions, null_actions, future_tokens
        )  # [B, S, D]
        slots = self.layout.slot_positions(t, x.device)
        h = self.transformer(x, torch.arange(x.shape[1], device=x.device))  # [B, T·L, D]
        pred = self.layout.predictor_positions(t, x.device)  # [T - first, n]
        frame_logits = self.frame_head(h[:, pred])  # [B, T - first, n, V]
        hs = h[:, slots]  # [B, T, D]
        return ARWorldModelOutput(
            frame_logits=frame_logits,
            reward=self.reward_head(hs).squeeze(-1),
            done_logits=self.done_head(hs).squeeze(-1),
        )

    # ------------------------------------------------------------------ inference
    def run(self, state: ARState, x: Tensor, positions: Tensor) -> Tensor:
        """Hidden states ``[B, S, D]`` of inputs ``x`` at ``positions``, appended to
        ``state`` (its KV cache, or its recomputed window)."""
        return self.decoder.run(self.transformer, state, x, positions)

    @torch.no_grad()
    def reset(
        self,
        context_frames: Tensor,
        context_actions: Tensor | None = None,
        *,
        goal_frame: Tensor | None = None,
        prompt_frames: Tensor | None = None,
        prompt_actions: Tensor | None = None,
    ) -> ARState | BufferedState:
        """Encode and prefill the context (``k > 1``: its last ``1 + n·k`` frames, in a
        ``BufferedState``).

        Args:
            context_frames: ``[B, T0, C, H, W]`` in [-1, 1]; the last ``max_frames`` are kept.
            context_actions: ``[B, T0 - 1, ...]`` (or ``[B, T0, ...]``, the last ignored)
                between context frames; ``None``: null actions.
            goal_frame: ``[B, C, H, W]``, placed first (iVideoGPT's goal-conditioned
                rearrangement; train with ``goal_prob > 0``). Pinned across refreshes.
            prompt_frames: a demonstration clip ``[B, Tp, C, H, W]`` placed before the
                context, for video-prompt conditioning. Pinned across refreshes.
            prompt_actions: the demonstration's ``[B, Tp - 1, ...]`` actions.
        """
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        if self.frames_per_step > 1:
            if goal_frame is not None or prompt_frames is not None:
                raise ValueError(
                    "goal_frame and prompt_frames need a per-frame tokenizer; this world model's "
                    f"tokenizer has temporal_compression {self.frames_per_step}"
                )
            state = latent_context_state(self, context_frames, context_actions)
            self.decoder.prefill(self, state)
            return start_buffered(state, context_frames[:, context_frames.shape[1] - state.t :])
        if not self.compressive:
            state = context_state(
                self, context_frames, context_actions, goal_frame, prompt_frames, prompt_actions
            )
        elif goal_frame is not None or prompt_frames is not None:
            raise ValueError(
                "goal_frame and prompt_frames need a per-frame tokenizer; this world model "
                "uses a compressive one"
            )
        else:
            state = compressive_state(self, context_frames, context_actions)
        self.decoder.prefill(self, state)
        return state

    def anchor(self, state: ARState, frames: Tensor) -> None:
        """Make ``frames [B, T0, C, H, W]`` the compressive context (tokens and pixels)."""
        state.tokens = list(self.encode_frames(frames, "context").unbind(1))
        state.context_frames = frames
        state.recent_frames = list(frames.unbind(1))

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        """Take ``action`` ``[B, ...]`` after the last frame; returns the next frame (``k > 1``:
        ``buffered_step``, ``k - 1`` frames behind)."""
        if self.frames_per_step > 1:
            return buffered_step(self, state, action)  # type: ignore[arg-type]
        if not isinstance(state, ARState):
            raise TypeError(f"state must come from ARWorldModel.reset; got {type(state).__name__}")
        self.action_spec.validate(action, name="action", batch_dims=1)
        b = state.tokens[-1].shape[0]
        if action.shape[0] != b:
            raise ValueError(f"action has batch size {action.shape[0]} but the state has {b}")
        return self.decoder.step(self, state, action)

    @torch.no_grad()
    def rollout(
        self, context_frames: Tensor, actions: Tensor, context_actions: Tensor | None = None
    ) -> Rollout:
        """``reset`` then one frame per action ``[B, T, ...]`` (``CrossFrameDecoder``:
        generated across frames; ``k > 1``: whole latent steps, ``buffered_rollout``)."""
        if self.frames_per_step > 1:
            check_world_model_inputs(self.action_spec, context_frames, actions, context_actions)
            state = self.reset(context_frames, context_actions)
            return buffered_rollout(self, state, actions)  # type: ignore[arg-type]
        return self.decoder.rollout(self, context_frames, actions, context_actions)

    @torch.no_grad()
    def step_latent(self, state: WorldState, actions: Tensor) -> LatentStep:
        """One sequence step after ``state`` (an ``ARState``, updated in place) under its ``k``
        actions ``[B, k, ...]``: the latent's frames ``[B, k, C, H, W]``, rewards and dones."""
        return step_latent(self, state, actions)  # type: ignore[arg-type]

    def finish_frame(self, state: ARState, grid: Tensor, action: Tensor) -> Tensor:
        """Append a complete frame's ids ``[B, h, w]`` (after ``action``) to the state and
        decode it → frame ``[B, C, H, W]`` (``k > 1``: a latent's frames ``[B, k, C, H, W]``)."""
        state.tokens.append(grid)
        state.actions.append(action)
        if self.frames_per_step > 1:
            return decode_latent(self, state, grid)
        t0 = self.layout.t0
        frame = self.codec.decode(grid, state.tokens[:t0], state.context_frames)  # [B, C, H, W]
        if self.compressive:  # the newest T0 frames: the next context when the window is full
            state.recent_frames = [*state.recent_frames[-(t0 - 1) :], frame] if t0 > 1 else [frame]
        state.t += 1
        state.frames = frame.unsqueeze(1)
        return frame


def _rename_old_keys(state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: Lightning checkpoints of before ``ActionEncoder``."""
    renamed = rename_action_keys(state_dict, prefix)
    if list(renamed) != list(state_dict):
        state_dict.clear()
        state_dict.update(renamed)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
