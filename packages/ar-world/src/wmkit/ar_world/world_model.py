"""`ARWorldModel`: an autoregressive transformer world model over frame, action and reward
tokens (iVideoGPT, Wu et al. 2024; MineWorld, Guo et al. 2025), usable through
``wmkit.core.WorldModel``.

Frames go through any frozen discrete ``wmkit.core.Tokenizer`` (per-frame: temporal
compression 1); the transformer predicts the next frame's tokens one by one (raster) or
along anti-diagonals (``diagonal_decoding``; in ``rollout`` with ``cross_frame=True`` also
across frames, ``cross_frame_decoding``), and a reward and done at each step's slot.

A *compressive* tokenizer (iVideoGPT: ``encode(video, context_frames=T0)`` gives ``N`` tokens
per context frame in ``Latents.values`` and ``n < N`` per future frame in ``Latents.future``;
it exposes ``future_vocab_size`` and ``future_tokens_shape``) gives the compressive layout:
``T0`` context steps, then future steps, only future frames predicted, and every future frame
decoded from its tokens together with the context tokens and the observed context frames
(``Latents.context_frames``). When the window is full the newest ``T0`` frames become the new
context (re-encoded), so play goes on forever. Goal and video-prompt prefixes need the
per-frame layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from wmkit.ar_world.cross_frame_decoding import cross_frame_diagonal_decode
from wmkit.ar_world.cuda_graphs import GraphedDecoder
from wmkit.ar_world.diagonal_decoding import diagonal_decode
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.layout import SequenceLayout
from wmkit.ar_world.raster_decoding import raster_decode
from wmkit.ar_world.sampling import Sampler
from wmkit.ar_world.sizes import SIZES
from wmkit.ar_world.transformer import Transformer, merge_gate_up
from wmkit.core import (
    ActionSpec,
    Latents,
    PretrainedMixin,
    Rollout,
    StepOutput,
    StepwiseRolloutMixin,
    Tokenizer,
    WorldState,
    check_video,
    check_world_model_inputs,
    follow_device,
    load_pretrained,
)

__all__ = ["TOKENIZER_SUBDIR", "ARState", "ARWorldModel", "ARWorldModelOutput"]

TOKENIZER_SUBDIR = "tokenizer"
"""``save_pretrained`` writes the frozen tokenizer here, beside the world model's files."""


@dataclass
class ARWorldModelOutput:
    """Teacher-forced outputs for a clip of ``T`` steps.

    Attributes:
        frame_logits: ``[B, T - 1, n, V]``, logits of the tokens of frames ``1 … T - 1``
            (compressive: ``[B, T - T0, n, V_f]``, the future frames).
        reward: ``[B, T]`` predicted reward of each step's action.
        done_logits: ``[B, T]`` logits of each step ending the episode.
    """

    frame_logits: Tensor
    reward: Tensor
    done_logits: Tensor


@dataclass
class ARState(WorldState):
    """Decoding state: the token window (pinned prefix + recent frames), the actions
    between its frames, and the KV cache (or, without a cache, the input embeddings).

    ``step`` updates the cache in place: keep using the returned state, or ``clone()`` one to
    branch (planning).
    """

    prefix_tokens: list[Tensor] = field(default_factory=list)
    prefix_actions: list[Tensor | None] = field(default_factory=list)
    tokens: list[Tensor] = field(default_factory=list)
    actions: list[Tensor | None] = field(default_factory=list)
    cache: KVCache | None = None
    inputs: Tensor | None = None
    pos: int = 0
    context_frames: Tensor | None = None
    recent_frames: list[Tensor] = field(default_factory=list)

    def clone(self) -> ARState:
        cache = None
        if self.cache is not None:
            cache = KVCache(
                [k.clone() for k in self.cache.keys],
                [v.clone() for v in self.cache.values],
                self.cache.valid.clone(),
                self.cache.end,
                self.cache.static,
            )
        return ARState(
            t=self.t,
            frames=self.frames,
            extra=dict(self.extra),
            prefix_tokens=list(self.prefix_tokens),
            prefix_actions=list(self.prefix_actions),
            tokens=list(self.tokens),
            actions=list(self.actions),
            cache=cache,
            inputs=self.inputs,
            pos=self.pos,
            context_frames=self.context_frames,
            recent_frames=list(self.recent_frames),
        )


class ARWorldModel(nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """Llama-style decoder over ``[frame tokens][action tokens][slot]`` steps.

    Args:
        action_spec: the actions it takes.
        tokenizer: a frozen discrete per-frame tokenizer, or the directory it was saved to
            (loaded with ``wmkit.core.load_pretrained``). ``save_pretrained`` saves it in the
            subdirectory ``tokenizer/`` and records ``"./tokenizer"``, which
            ``from_pretrained`` resolves against the model's directory.
        frame_size: ``(H, W)`` of the frames.
        size: named transformer size (``wmkit.ar_world.SIZES``).
        action_mode: ``"tokens"`` (MineWorld) or ``"embedding"`` (iVideoGPT).
        max_frames: context window in frames (the training clip length).
        refresh_keep: frames kept when the window is full and the cache is refreshed
            (default ``max_frames // 2``, MineWorld's reference frames).
        decoding: ``"raster"`` or ``"diagonal"``.
        window: diagonal decoding: most rows decoded at once.
        offset: diagonal decoding: lag in tokens between a row and the row above.
        use_cache: decode with the static KV cache (``False``: recompute the whole window for
            every token; raster only; for benchmarks).
        temperature: sampling temperature (``0``: greedy, deterministic).
        top_k: sample among the ``top_k`` most likely tokens.
        top_p: nucleus sampling threshold.
        gradient_checkpointing: recompute blocks in the backward pass.
        context_frames: compressive tokenizers only: ``T0`` context steps (default: the
            tokenizer's ``default_context_frames``, else 1).
        cross_frame: diagonal decoding only: in ``rollout``, where every action is known in
            advance, start the next frame before the current one ends
            (``wmkit.ar_world.cross_frame_decoding``; the anti-diagonals run on across frame
            boundaries, ``window`` rows in flight in all). ``step`` (interactive play, the
            next action unknown) is unchanged, so with ``window > 1`` a cross-frame rollout
            differs from ``reset`` + ``step``; with ``window=1`` it equals it token for token.
        cuda_graphs: decode with a static KV cache and, on CUDA, replay each decoding pass as
            a CUDA graph (``wmkit.ar_world.cuda_graphs``; the real-time path for batch-1 play
            on a GPU). Same outputs as without. The graphs read one cache owned by the model,
            so ``reset`` reuses it: one live state at a time (a ``clone()`` gets its own cache
            and runs without graphs). Off CUDA the static path runs eagerly.
        guidance_scale: action guidance (classifier-free guidance on the action, trained by
            ``ARWorldModelModule(action_dropout=...)``): every decoding pass also runs with
            the step's action replaced by the null action, and tokens are drawn from
            ``log p_null + s (log p_action - log p_null)``. ``1``: off (one pass); ``> 1``
            strengthens the action's effect, ``0`` ignores it. The branches share the history
            (the real past actions); the null branch is dropped after each step. ``step`` and
            ``rollout`` only: not with ``cross_frame`` or ``cuda_graphs``. Costs a doubled
            batch per pass.
        compile_decoding: decode on a static KV cache with whole cached passes through
            ``torch.compile`` (``Transformer.compile_decoding``: every block, the cache writes
            and attention in one graph; 217 kernels per 300M pass against 906 eager ops); with
            ``cuda_graphs`` the compiled kernels are what the graphs capture. Same outputs as
            without (tested). Compiles on first use (~30 s on CPU, shared by models of the
            same architecture).
    """

    frozen_components = ("tokenizer",)  # saved in tokenizer/ (PretrainedMixin)

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved with SwiGLU's separate ``gate``/``up`` matrices, merged."""
        return merge_gate_up(state, "transformer.")

    def __init__(
        self,
        action_spec: ActionSpec,
        tokenizer: str | nn.Module,
        frame_size: tuple[int, int] = (16, 16),
        size: str = "tiny",
        action_mode: Literal["tokens", "embedding"] = "tokens",
        max_frames: int = 8,
        refresh_keep: int | None = None,
        decoding: Literal["raster", "diagonal"] = "raster",
        window: int = 4,
        offset: int = 1,
        use_cache: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float = 1.0,
        gradient_checkpointing: bool = False,
        context_frames: int | None = None,
        cross_frame: bool = False,
        cuda_graphs: bool = False,
        compile_decoding: bool = False,
        guidance_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
        if decoding not in ("raster", "diagonal"):
            raise ValueError(f"decoding must be 'raster' or 'diagonal'; got {decoding!r}")
        if decoding == "diagonal" and not use_cache:
            raise ValueError(
                "decoding='diagonal' needs use_cache=True (tokens arrive out of order)"
            )
        if cross_frame and decoding != "diagonal":
            raise ValueError(
                f"cross_frame=True needs decoding='diagonal' (with use_cache=True); got "
                f"decoding={decoding!r}"
            )
        if cuda_graphs and not use_cache:
            raise ValueError("cuda_graphs=True needs use_cache=True (graphs replay cached passes)")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0; got {guidance_scale}")
        if guidance_scale != 1.0 and (cross_frame or cuda_graphs):
            raise ValueError(
                "guidance_scale != 1 runs with step-by-step decoding: not with cross_frame or "
                "cuda_graphs"
            )
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2; got {max_frames}")
        keep = max_frames // 2 if refresh_keep is None else refresh_keep
        if not 1 <= keep < max_frames:
            raise ValueError(f"refresh_keep must be in [1, max_frames - 1]; got {refresh_keep}")
        if window < 1 or offset < 1:
            raise ValueError(f"window and offset must be >= 1; got {window}, {offset}")
        action_spec = ActionSpec.coerce(action_spec, "ARWorldModel action_spec")
        self._action_spec = action_spec
        self.__dict__["tokenizer"] = _load_tokenizer(tokenizer)  # frozen, not a submodule
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        shape = self.tokenizer.tokens_shape(1, *self.frame_size)
        if len(shape) != 3:
            raise ValueError(f"tokenizer.tokens_shape(1, H, W) must be (1, h, w); got {shape}")
        self.compressive = hasattr(self.tokenizer, "future_tokens_shape")
        compressive: dict[str, Any] = {}
        if self.compressive:
            t0 = context_frames or getattr(self.tokenizer, "default_context_frames", None) or 1
            if not 1 <= t0 < max_frames:
                raise ValueError(f"context_frames must be in [1, max_frames - 1]; got {t0}")
            fshape = self.tokenizer.future_tokens_shape(t0 + 1, *self.frame_size, t0)
            compressive = {
                "future_grid": (fshape[1], fshape[2]),
                "future_vocab_size": self.tokenizer.future_vocab_size,
                "context_steps": t0,
            }
        self.layout = SequenceLayout(
            (shape[1], shape[2]), self.tokenizer.vocab_size, action_spec, action_mode,
            **compressive,
        )  # fmt: skip
        self.max_frames, self.refresh_keep = max_frames, keep
        self.decoding, self.window, self.offset, self.use_cache = (
            decoding,
            window,
            offset,
            use_cache,
        )
        self.cross_frame = cross_frame
        self.cuda_graphs = cuda_graphs
        self._decoder: GraphedDecoder | None = None
        self.sampler = Sampler(temperature, top_k, top_p)
        self.guidance_scale = float(guidance_scale)
        cfg = SIZES[size]
        dim = cfg["dim"]
        self.embed = nn.Embedding(self.layout.num_ids, dim)
        self.role = nn.Embedding(self.layout.num_roles, dim)
        if action_mode == "embedding":
            self.action_proj = nn.Linear(action_spec.feature_dim, dim)
            self.null_action = nn.Parameter(torch.zeros(dim))
        self.transformer = Transformer(
            dim, cfg["depth"], cfg["heads"], cfg["ffn_multiple"],
            gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip
        if compile_decoding:
            self.transformer.compile_decoding()
        self.frame_head = nn.Linear(dim, self.layout.vocab_size, bias=False)
        self.reward_head = nn.Linear(dim, 1)
        self.done_head = nn.Linear(dim, 1)
        self.apply(_init_weights)

    # ------------------------------------------------------------------ nn.Module plumbing
    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def tokens_per_frame(self) -> int:
        return self.layout.n

    def _apply(self, fn: Any, recurse: bool = True) -> ARWorldModel:  # move the tokenizer too
        super()._apply(fn, recurse)
        self._decoder = None  # captured graphs point at the old parameters
        if isinstance(self.tokenizer, nn.Module):
            self.tokenizer._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> ARWorldModel:
        super().train(mode)
        if isinstance(self.tokenizer, nn.Module):
            self.tokenizer.eval()  # frozen
        return self

    # ------------------------------------------------------------------ embeddings
    def _action_vector(self, actions: Tensor | None, null: Tensor | None, lead: tuple) -> Tensor:
        """Embedding-mode action vector ``[*lead, D]`` added at the slot."""
        null_vec = self.null_action.expand(*lead, -1)
        if actions is None:
            return null_vec
        vec = self.action_proj(self.action_spec.features(actions))
        return vec if null is None else torch.where(null[..., None], null_vec, vec)

    def _embed(self, ids: Tensor, roles: Tensor) -> Tensor:
        return self.embed(ids) + self.role(roles)  # [B, S, D]

    # ------------------------------------------------------------------ training forward
    def _check_frames(self, frames: Tensor, name: str) -> None:
        check_video(frames, name)
        if tuple(frames.shape[-2:]) != self.frame_size:
            raise ValueError(
                f"{name} must be {self.frame_size[0]}x{self.frame_size[1]} (frame_size); got "
                f"{frames.shape[-2]}x{frames.shape[-1]}"
            )

    def encode_frames(self, frames: Tensor, name: str = "frames") -> Tensor:
        """Frames ``[B, T, C, H, W]`` in [-1, 1] → token ids ``[B, T, h, w]`` (frozen; each
        frame as a context frame with a compressive tokenizer)."""
        self._check_frames(frames, name)
        follow_device(self.tokenizer, frames.device)  # FSDP bypasses _apply
        with torch.no_grad():
            if self.compressive:
                return self.tokenizer.encode(frames, context_frames=frames.shape[1]).values
            latents = self.tokenizer.encode(frames)
        if latents.future is not None:
            raise ValueError(
                "the tokenizer returned future tokens but has no future_tokens_shape; "
                "compressive tokenizers need both"
            )
        return latents.values

    def encode_clip(self, frames: Tensor, name: str = "frames") -> tuple[Tensor, Tensor | None]:
        """A training clip ``[B, T, C, H, W]`` → ``(tokens, future)``: per-frame layout
        ``([B, T, h, w], None)``; compressive ``([B, T0, N-grid], [B, T - T0, n-grid])``."""
        if not self.compressive:
            return self.encode_frames(frames, name), None
        self._check_frames(frames, name)
        follow_device(self.tokenizer, frames.device)  # FSDP bypasses _apply
        if frames.shape[1] <= self.layout.t0:
            raise ValueError(
                f"{name} needs more than context_frames = {self.layout.t0} frames; got "
                f"{frames.shape[1]}"
            )
        with torch.no_grad():
            latents = self.tokenizer.encode(frames, context_frames=self.layout.t0)
        return latents.values, latents.future

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
            actions: ``[B, T, *action_shape]``; action ``t`` follows frame ``t``.
            null_actions: optional ``bool [B, T]``: replace those actions by the null action
                (action dropout, so the model also works without context actions).
            future_tokens: compressive only: future frames' ids ``[B, T - T0, h, w]``
                (``encode_clip``).
        """
        lay = self.layout
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (lay.ch, lay.cw):
            raise ValueError(
                f"tokens must be [B, T, {lay.ch}, {lay.cw}]; got {tuple(tokens.shape)}"
            )
        if lay.compressive:
            if future_tokens is None or tokens.shape[1] != lay.t0:
                raise ValueError(
                    f"a compressive layout needs tokens [B, {lay.t0}, ...] (context) and "
                    f"future_tokens; got tokens {tuple(tokens.shape)}, future_tokens "
                    f"{None if future_tokens is None else tuple(future_tokens.shape)}"
                )
            if future_tokens.ndim != 4 or tuple(future_tokens.shape[2:]) != (lay.h, lay.w):
                raise ValueError(
                    f"future_tokens must be [B, T - T0, {lay.h}, {lay.w}]; got "
                    f"{tuple(future_tokens.shape)}"
                )
        elif future_tokens is not None:
            raise ValueError("future_tokens need a compressive tokenizer")
        b = tokens.shape[0]
        t = tokens.shape[1] + (0 if future_tokens is None else future_tokens.shape[1])
        if t > self.max_frames:
            raise ValueError(f"clip has {t} frames but max_frames is {self.max_frames}")
        self.action_spec.validate(actions, name="actions")
        if tuple(actions.shape[:2]) != (b, t):
            raise ValueError(f"actions must be [B, T, ...] = {(b, t)}; got {tuple(actions.shape)}")
        ids, roles = self.layout.build(tokens, actions, null_actions, future_tokens)
        x = self._embed(ids, roles)  # [B, S, D]
        slots = self.layout.slot_positions(t, x.device)
        if self.layout.mode == "embedding":
            extra = torch.zeros_like(x)
            extra[:, slots] = self._action_vector(actions, null_actions, (b, t)).to(x.dtype)
            x = x + extra
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
    def _run(self, state: ARState, x: Tensor, positions: Tensor) -> Tensor:
        if state.cache is not None:
            if self._decoder is not None and state.cache is self._decoder.cache:
                return self._decoder(x, positions)
            return self.transformer(x, positions, state.cache)
        start = 0 if state.inputs is None else state.inputs.shape[1]
        if positions[0] != start or positions[-1] != start + x.shape[1] - 1:
            raise ValueError("without the KV cache, tokens must be fed in order")
        state.inputs = x if state.inputs is None else torch.cat([state.inputs, x], dim=1)
        p = state.inputs.shape[1]
        return self.transformer(state.inputs, torch.arange(p, device=x.device))[:, -x.shape[1] :]

    def _prefill(self, state: ARState) -> None:
        """(Re)build the window ``prefix + recent frames`` and run it through the model."""
        frames = state.prefix_tokens + state.tokens
        acts = state.prefix_actions + state.actions  # one fewer than frames
        future = None
        if self.layout.compressive:  # T0 context grids, then future grids
            t0 = self.layout.t0
            if len(frames) > t0:
                future = torch.stack(frames[t0:], dim=1)
            frames = frames[:t0]
        tokens = torch.stack(frames, dim=1)  # [B, T, h, w]
        b = tokens.shape[0]
        t = tokens.shape[1] + (0 if future is None else future.shape[1])
        spec = self.action_spec
        filler = torch.zeros((b, *spec.action_shape), dtype=spec.dtype, device=tokens.device)
        if spec.kind == "continuous":
            filler = filler + torch.tensor(spec.low, device=tokens.device).reshape(
                spec.action_shape
            )
        padded = [a if a is not None else filler for a in acts] + [filler]
        null = torch.tensor([a is None for a in acts] + [True], device=tokens.device)
        actions = torch.stack(padded, dim=1)  # [B, T, ...]
        null_bt = null[None].expand(b, t)
        ids, roles = self.layout.build(tokens, actions, null_bt, future)
        x = self._embed(ids, roles)
        if self.layout.mode == "embedding":
            slots = self.layout.slot_positions(t, x.device)
            extra = torch.zeros_like(x)
            extra[:, slots] = self._action_vector(actions, null_bt, (b, t)).to(x.dtype)
            x = x + extra
        cut = self.layout.k + 1  # the last frame has no action yet
        x = x[:, :-cut]
        p = x.shape[1]
        state.inputs = None
        if self.use_cache:
            if state.cache is None:
                lay = self.layout
                max_len = lay.step_start(self.max_frames)
                if self.cuda_graphs:
                    state.cache = self._graphed_cache(b, max_len, x.device, x.dtype)
                else:  # compiled passes need the static cache's fixed shapes
                    static = self.transformer.compiled_decoding
                    state.cache = self.transformer.new_cache(b, max_len, x.device, x.dtype, static)
            state.cache.reset()
        positions = torch.arange(p, device=x.device)
        self._run(state, x, positions)
        state.pos = p

    def _graphed_cache(
        self, batch: int, max_len: int, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        """The static cache of the model's :class:`GraphedDecoder` (rebuilt, graphs and all,
        when the batch, length, device or dtype changes)."""
        dec = self._decoder
        if dec is not None:
            k = dec.cache.keys[0]
            same = (k.shape[0], dec.cache.max_len, k.device, k.dtype)
            if same == (batch, max_len, device, dtype):
                return dec.cache
        cache = self.transformer.new_cache(batch, max_len, device, dtype, static=True)
        self._decoder = GraphedDecoder(self.transformer, cache)
        return cache

    def _tokens_for(self, frames: Tensor, name: str) -> list[Tensor]:
        return list(self.encode_frames(frames, name).unbind(1))

    @torch.no_grad()
    def reset(
        self,
        context_frames: Tensor,
        context_actions: Tensor | None = None,
        *,
        goal_frame: Tensor | None = None,
        prompt_frames: Tensor | None = None,
        prompt_actions: Tensor | None = None,
    ) -> ARState:
        """Encode and prefill the context.

        Args:
            context_frames: ``[B, T0, C, H, W]`` in [-1, 1]; the last ``max_frames`` are kept.
            context_actions: ``[B, T0 - 1, ...]`` (or ``[B, T0, ...]``, the last ignored)
                between context frames; ``None``: null actions.
            goal_frame: ``[B, C, H, W]``, placed first (iVideoGPT's goal-conditioned
                rearrangement; train with ``goal_prob > 0``). Pinned across refreshes.
            prompt_frames, prompt_actions: a demonstration clip ``[B, Tp, C, H, W]`` (and its
                ``[B, Tp - 1, ...]`` actions) placed before the context, for video-prompt
                conditioning. Pinned across refreshes.
        """
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        if self.compressive:
            if goal_frame is not None or prompt_frames is not None:
                raise ValueError(
                    "goal_frame and prompt_frames need a per-frame tokenizer; this world model "
                    "uses a compressive one"
                )
            return self._reset_compressive(context_frames, context_actions)
        b = context_frames.shape[0]
        prefix_tokens: list[Tensor] = []
        prefix_actions: list[Tensor | None] = []
        if goal_frame is not None:
            check_video(goal_frame.unsqueeze(1), "goal_frame")
            prefix_tokens += self._tokens_for(goal_frame.unsqueeze(1), "goal_frame")
            prefix_actions.append(None)
        if prompt_frames is not None:
            check_world_model_inputs(self.action_spec, prompt_frames, None, prompt_actions)
            tp = prompt_frames.shape[1]
            prefix_tokens += self._tokens_for(prompt_frames, "prompt_frames")
            pa = prompt_actions
            prefix_actions += [pa[:, i] if pa is not None else None for i in range(tp - 1)]
            prefix_actions.append(None)
        if len(prefix_tokens) >= self.max_frames - 1:
            raise ValueError(
                f"goal/prompt take {len(prefix_tokens)} frames; max_frames is {self.max_frames}"
            )
        room = self.max_frames - len(prefix_tokens)
        tokens = self._tokens_for(context_frames, "context_frames")
        t0 = len(tokens)
        acts: list[Tensor | None] = [
            context_actions[:, i] if context_actions is not None else None for i in range(t0 - 1)
        ]
        keep = min(t0, room)
        state = ARState(
            t=t0,
            frames=context_frames[:, -1:],
            prefix_tokens=[p.expand(b, -1, -1) for p in prefix_tokens],
            prefix_actions=prefix_actions,
            tokens=tokens[t0 - keep :],
            actions=acts[t0 - keep :],
        )
        self._prefill(state)
        return state

    def _reset_compressive(self, context_frames: Tensor, context_actions: Tensor | None) -> ARState:
        t0 = self.layout.t0
        self._check_frames(context_frames, "context_frames")
        if context_frames.shape[1] < t0:
            raise ValueError(
                f"context_frames must have at least context_frames = {t0} frames (the "
                f"compressive layout's context); got {context_frames.shape[1]}"
            )
        frames = context_frames[:, -t0:]
        total = context_frames.shape[1]
        acts: list[Tensor | None] = [
            context_actions[:, i] if context_actions is not None else None
            for i in range(total - t0, total - 1)
        ]
        state = ARState(t=total, frames=context_frames[:, -1:], actions=acts)
        self._anchor(state, frames)
        self._prefill(state)
        return state

    def _anchor(self, state: ARState, frames: Tensor) -> None:
        """Make ``frames [B, T0, C, H, W]`` the compressive context (tokens and pixels)."""
        state.tokens = list(self.encode_frames(frames, "context").unbind(1))
        state.context_frames = frames
        state.recent_frames = list(frames.unbind(1))

    def _decode_future(self, state: ARState, grid: Tensor) -> Tensor:
        """A compressive future frame's ids ``[B, h, w]`` → frame ``[B, C, H, W]``."""
        t0 = self.layout.t0
        latents = Latents(
            values=torch.stack(state.tokens[:t0], dim=1),
            kind="discrete",
            future=grid[:, None],
            context_indices=tuple(range(t0)),
            context_frames=state.context_frames,
        )
        return self.tokenizer.decode(latents)[:, -1]

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        """Take ``action`` ``[B, ...]`` after the last frame; returns the next frame."""
        if not isinstance(state, ARState):
            raise TypeError(f"state must come from ARWorldModel.reset; got {type(state).__name__}")
        self.action_spec.validate(action, name="action", batch_dims=1)
        b = state.tokens[-1].shape[0]
        if action.shape[0] != b:
            raise ValueError(f"action has batch size {action.shape[0]} but the state has {b}")
        self._refresh_window(state)
        layout = self.layout
        device = state.tokens[-1].device
        guided = self.guidance_scale != 1.0
        run = self._guidance_twin(state) if guided else state  # rows: action, then null
        x = self._action_slot_inputs(action, b, device)  # [B, K + 1, D]
        if guided:
            x = torch.cat([x, self._action_slot_inputs(None, b, device)])
        positions = state.pos + torch.arange(layout.k + 1, device=device)
        slots = self._run(run, x, positions)[:, -1]  # [B (x2), D]
        slot = slots[:b]
        reward = self.reward_head(slot).squeeze(-1).float()
        done = (self.done_head(slot).squeeze(-1) > 0).float()
        base = state.pos + layout.k + 1
        roles = layout.frame_roles(device)

        def feed(tok: Tensor, index: Tensor) -> Tensor:
            x = self._embed(tok + layout.future_offset, roles[index])
            h = self._run(run, torch.cat([x, x]) if guided else x, base + index)
            return self._guided(self.frame_head(h))  # [B, S, V]

        first = self._guided(self.frame_head(slots))
        if self.decoding == "diagonal":
            previous = state.tokens[-1]
            if previous.shape[-2:] != (layout.h, layout.w):  # a compressive context grid
                previous = None
            grid = diagonal_decode(
                feed, first, layout.h, layout.w, self.sampler, self.window, self.offset,
                placeholder=previous,
            )  # fmt: skip
        else:
            grid = raster_decode(feed, first, layout.h, layout.w, self.sampler)
        if guided:
            self._keep_action_rows(state, run, b)
        state.pos = base + layout.n
        frame = self._finish_frame(state, grid, action)
        return StepOutput(frame=frame, reward=reward, state=state, done=done)

    def _guidance_twin(self, state: ARState) -> ARState:
        """A state whose cache (or recomputed inputs) holds ``state``'s rows twice: the action
        branch, then the null-action branch of action guidance (same history)."""
        twin = ARState(t=state.t, frames=state.frames, pos=state.pos)
        if state.cache is not None:
            c = state.cache
            twin.cache = KVCache(
                [torch.cat([k, k]) for k in c.keys], [torch.cat([v, v]) for v in c.values],
                c.valid, c.end, c.static,
            )  # fmt: skip  # ``valid`` is shared: both branches write the same slots
        elif state.inputs is not None:
            twin.inputs = torch.cat([state.inputs, state.inputs])
        return twin

    @staticmethod
    def _keep_action_rows(state: ARState, twin: ARState, b: int) -> None:
        """After a guided step, keep the action branch's cache (the null branch is dropped)."""
        if twin.cache is not None and state.cache is not None:
            state.cache.keys = [k[:b] for k in twin.cache.keys]
            state.cache.values = [v[:b] for v in twin.cache.values]
            state.cache.end = twin.cache.end
        elif twin.inputs is not None:
            state.inputs = twin.inputs[:b]

    def _guided(self, logits: Tensor) -> Tensor:
        """Action guidance on ``[2B, ..., V]`` logits (action rows, then null rows) → ``[B, ...,
        V]`` log-probabilities; unchanged when guidance is off."""
        if self.guidance_scale == 1.0:
            return logits
        cond, null = logits.float().log_softmax(-1).chunk(2)
        return null + self.guidance_scale * (cond - null)

    def _refresh_window(self, state: ARState) -> None:
        """When the window is full, refresh the cache (compressive: re-anchor the context)."""
        if self.compressive and len(state.tokens) >= self.max_frames:  # window full: re-anchor
            t0 = self.layout.t0
            state.actions = state.actions[len(state.actions) - (t0 - 1) :] if t0 > 1 else []
            self._anchor(state, torch.stack(state.recent_frames[-t0:], dim=1))
            self._prefill(state)
        elif len(state.prefix_tokens) + len(state.tokens) >= self.max_frames:  # window full
            keep = min(self.refresh_keep, self.max_frames - len(state.prefix_tokens) - 1)
            keep = max(keep, 1)
            state.tokens = state.tokens[-keep:]
            state.actions = state.actions[len(state.actions) - (keep - 1) :] if keep > 1 else []
            self._prefill(state)

    def _action_slot_inputs(self, action: Tensor, b: int, device: torch.device) -> Tensor:
        """Input embeddings ``[B, K + 1, D]`` of ``A_t S_t`` for ``action`` ``[B, ...]``."""
        layout = self.layout
        ids = layout.action_slot_ids(action, None, b)  # [B, K + 1]
        x = self._embed(ids, layout.action_slot_roles(device))  # [B, K + 1, D]
        if layout.mode == "embedding":
            extra = torch.zeros_like(x)
            extra[:, -1] = self._action_vector(action, None, (b,)).to(x.dtype)
            x = x + extra
        return x

    def _finish_frame(self, state: ARState, grid: Tensor, action: Tensor) -> Tensor:
        """Append a complete frame's ids ``[B, h, w]`` (after ``action``) to the state and
        decode it → frame ``[B, C, H, W]``."""
        state.tokens.append(grid)
        state.actions.append(action)
        if self.compressive:
            frame = self._decode_future(state, grid).clamp(-1, 1)
            state.recent_frames = [*state.recent_frames[-(self.layout.t0 - 1) :], frame]
            if self.layout.t0 == 1:
                state.recent_frames = [frame]
        else:
            frame = self.tokenizer.decode(grid[:, None]).clamp(-1, 1)[:, 0]  # [B, C, H, W]
        state.t += 1
        state.frames = frame.unsqueeze(1)
        return frame

    # ------------------------------------------------------------------ cross-frame rollout
    @torch.no_grad()
    def rollout(
        self, context_frames: Tensor, actions: Tensor, context_actions: Tensor | None = None
    ) -> Rollout:
        """``reset`` then one frame per action ``[B, T, ...]``.

        Without ``cross_frame`` this is ``reset`` + ``step`` per action. With it, the frames
        between two cache refreshes are generated together by
        ``cross_frame_diagonal_decode`` (the next frame starts before the current one ends);
        the pipeline drains at every refresh (positions are renumbered there), and each frame
        is decoded to pixels once its tokens are complete.
        """
        if not self.cross_frame:
            return super().rollout(context_frames, actions, context_actions)
        check_world_model_inputs(self.action_spec, context_frames, actions, context_actions)
        state = self.reset(context_frames, context_actions)
        frames, rewards, dones = [], [], []
        t, total = 0, actions.shape[1]
        while t < total:
            self._refresh_window(state)
            room = self.max_frames - len(state.prefix_tokens) - len(state.tokens)
            chunk = actions[:, t : t + room]
            for frame, reward, done in self._decode_chunk(state, chunk):
                frames.append(frame)
                rewards.append(reward)
                dones.append(done)
            t += chunk.shape[1]
        return Rollout(
            frames=torch.stack(frames, dim=1),  # [B, T, C, H, W]
            rewards=torch.stack(rewards, dim=1),
            dones=torch.stack(dones, dim=1),
        )

    def _decode_chunk(self, state: ARState, actions: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Generate the frames after ``actions`` ``[B, F, ...]`` (all inside the current
        window) across frames; returns ``(frame, reward, done)`` per frame."""
        layout = self.layout
        b, num = actions.shape[:2]
        device = state.tokens[-1].device
        k1 = layout.k + 1
        first = len(state.prefix_tokens) + len(state.tokens)  # window index of frame 0
        starts = torch.tensor(
            [layout.step_start(first + f) for f in range(num)], dtype=torch.long, device=device
        )  # sequence position of each frame's first token
        preludes = [self._action_slot_inputs(actions[:, f], b, device) for f in range(num)]
        roles = layout.frame_roles(device)
        slots: list[Tensor | None] = [None] * num

        def feed(
            ids: Tensor, frame: Tensor, index: Tensor, pres: list[int]
        ) -> tuple[Tensor, Tensor]:
            s = ids.shape[1]
            xs = [self._embed(ids + layout.future_offset, roles[index])]  # [B, S, D]
            pos = [starts[frame] + index]
            for f in pres:
                xs.append(preludes[f])  # [B, K + 1, D]
                pos.append(starts[f] - k1 + torch.arange(k1, device=device))
            h = self._run(state, torch.cat(xs, dim=1), torch.cat(pos))
            slot_h = h[:, s + k1 - 1 :: k1]  # [B, P, D]
            for j, f in enumerate(pres):
                slots[f] = slot_h[:, j]  # the last write saw the complete previous frame
            return self.frame_head(h[:, :s]), self.frame_head(slot_h)

        previous = state.tokens[-1]
        if previous.shape[-2:] != (layout.h, layout.w):  # a compressive context grid
            previous = None
        grids = cross_frame_diagonal_decode(
            feed, num, layout.h, layout.w, self.sampler, b, self.window, self.offset,
            placeholder=previous, device=device,
        )  # fmt: skip  # [B, F, h, w]
        state.pos = int(starts[-1]) + layout.n
        out = []
        for f in range(num):
            slot = slots[f]
            if slot is None:  # pragma: no cover - every prelude is fed
                raise RuntimeError(f"the slot of frame {f} was never fed")
            reward = self.reward_head(slot).squeeze(-1).float()
            done = (self.done_head(slot).squeeze(-1) > 0).float()
            out.append((self._finish_frame(state, grids[:, f], actions[:, f]), reward, done))
        return out


def _load_tokenizer(tokenizer: str | os.PathLike | nn.Module) -> Any:
    if isinstance(tokenizer, str | os.PathLike):
        tokenizer = load_pretrained(tokenizer)
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"tokenizer must satisfy wmkit.core.Tokenizer (or be its directory); got "
            f"{type(tokenizer).__name__}"
        )
    if tokenizer.kind != "discrete" or not tokenizer.vocab_size:
        raise ValueError(
            f"tokenizer must be discrete with a vocab_size; got kind {tokenizer.kind!r}"
        )
    if tokenizer.temporal_compression != 1:
        raise ValueError(
            "ARWorldModel needs a per-frame tokenizer (temporal_compression 1); got "
            f"{tokenizer.temporal_compression}"
        )
    if isinstance(tokenizer, nn.Module):
        tokenizer.requires_grad_(False).eval()
    return tokenizer


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
