"""`TokenDecoder`: how an autoregressive world model generates the next frame's tokens.

A decoder is a strategy passed to ``ARWorldModel``: the order in which a frame's tokens are
drawn (``RasterDecoder``, ``DiagonalDecoder``, ``CrossFrameDecoder``) and everything that
depends on running the transformer step by step: the KV cache it decodes on (dynamic, static,
or replayed as CUDA graphs, ``cuda_graphs``), recomputing the window without a cache, the
window refresh when the context is full (MineWorld's reference frames, Guo et al. 2025), and
action guidance (classifier-free guidance on the action, Ho & Salimans 2022) with its
null-action twin of the state.

The decoder holds no weights: it calls back into the model for embeddings, heads and the
tokenizer (``ARWorldModel.run``, ``embed_ids``, ``anchor``, ``finish_frame``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from wmkit.ar_world.cuda_graphs import GraphedDecoder
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.sampling import Sampler
from wmkit.ar_world.state import ARState
from wmkit.ar_world.transformer import Transformer
from wmkit.core import Rollout, StepOutput, StepwiseRolloutMixin
from wmkit.core.components import init_config

if TYPE_CHECKING:
    from wmkit.ar_world.raster_decoding import FeedFn
    from wmkit.ar_world.world_model import ARWorldModel

__all__ = ["TokenDecoder"]


class TokenDecoder:
    """The parts every decoding order shares; subclasses implement ``decode_grid``.

    Args:
        temperature: sampling temperature (``0``: greedy, deterministic).
        top_k: sample among the ``top_k`` most likely tokens.
        top_p: nucleus sampling threshold.
        use_cache: decode with the KV cache (``False``: recompute the whole window for every
            token; tokens must then arrive in order).
        cuda_graphs: decode on a static KV cache and, on CUDA, replay each pass as a CUDA graph
            (``wmkit.ar_world.cuda_graphs``). Same outputs as without. The graphs read one
            cache owned by the decoder, so ``reset`` reuses it: one live state at a time (a
            ``clone()`` gets its own cache and runs without graphs). Off CUDA the static path
            runs eagerly.
        guidance_scale: action guidance, trained by ``ARWorldModelModule(action_dropout=...)``:
            every pass also runs with the step's action replaced by the null action, and
            tokens are drawn from ``log p_null + s (log p_action - log p_null)``. ``1``: off;
            ``> 1`` strengthens the action's effect, ``0`` ignores it. The branches share the
            history (the real past actions); the null branch is dropped after each step. Not
            with ``cuda_graphs``. Costs a doubled batch per pass.
        refresh_keep: frames kept when the window is full and the cache is refreshed
            (default ``max_frames // 2``, MineWorld's reference frames).
        compile_decoding: run cached passes on a static KV cache through ``torch.compile``
            (``Transformer.compile_decoding``; what ``cuda_graphs`` captures). Same outputs.

    A decoder serves one model (it holds that model's captured graphs).
    """

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float = 1.0,
        use_cache: bool = True,
        cuda_graphs: bool = False,
        guidance_scale: float = 1.0,
        refresh_keep: int | None = None,
        compile_decoding: bool = False,
    ) -> None:
        if cuda_graphs and not use_cache:
            raise ValueError("cuda_graphs=True needs use_cache=True (graphs replay cached passes)")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0; got {guidance_scale}")
        if guidance_scale != 1.0 and cuda_graphs:
            raise ValueError(
                "guidance_scale != 1 runs with step-by-step decoding: not with cross_frame or "
                "cuda_graphs"
            )
        self.sampler = Sampler(temperature, top_k, top_p)
        self.use_cache, self.cuda_graphs = use_cache, cuda_graphs
        self.guidance_scale = float(guidance_scale)
        self.refresh_keep, self.compile_decoding = refresh_keep, compile_decoding
        self.graphed: GraphedDecoder | None = None

    @property
    def temperature(self) -> float:
        return self.sampler.temperature

    @property
    def top_k(self) -> int | None:
        return self.sampler.top_k

    @property
    def top_p(self) -> float:
        return self.sampler.top_p

    def to_config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}`` this decoder is rebuilt from (``config.json``)."""
        return init_config(self, TokenDecoder)

    def attach(self, transformer: nn.Module, max_frames: int) -> None:
        """Check this decoder against a model's window of ``max_frames`` frames and prepare
        its ``transformer`` (``compile_decoding``)."""
        self.frames_kept(max_frames)
        if self.compile_decoding:
            transformer.compile_decoding()

    def frames_kept(self, max_frames: int) -> int:
        """Frames a window refresh keeps (``refresh_keep``, default ``max_frames // 2``)."""
        keep = max_frames // 2 if self.refresh_keep is None else self.refresh_keep
        if not 1 <= keep < max_frames:
            raise ValueError(
                f"refresh_keep must be in [1, max_frames - 1]; got {self.refresh_keep}"
            )
        return keep

    # ------------------------------------------------------------------ the cache
    def release(self) -> None:
        """Drop captured graphs (they point at the parameters of before a move)."""
        self.graphed = None

    def new_cache(
        self, transformer: Transformer, b: int, max_len: int, device: torch.device, dtype
    ) -> KVCache | None:
        """The cache a state decodes on (``None`` without a cache). With ``cuda_graphs``, the
        static cache of the decoder's :class:`GraphedDecoder`, rebuilt (graphs and all) when
        the batch, length, device or dtype changes."""
        if not self.use_cache:
            return None
        if not self.cuda_graphs:  # compiled passes need the static cache's fixed shapes
            static = transformer.compiled_decoding
            return transformer.new_cache(b, max_len, device, dtype, static)
        dec = self.graphed
        if dec is not None:
            k = dec.cache.keys[0]
            if (k.shape[0], dec.cache.max_len, k.device, k.dtype) == (b, max_len, device, dtype):
                return dec.cache
        cache = transformer.new_cache(b, max_len, device, dtype, static=True)
        self.graphed = GraphedDecoder(transformer, cache)
        return cache

    def run(self, transformer: Transformer, state: ARState, x: Tensor, positions: Tensor) -> Tensor:
        """Hidden states ``[B, S, D]`` of inputs ``x`` at ``positions``, appended to ``state``
        (its cache, or its recomputed inputs)."""
        if state.cache is not None:
            if self.graphed is not None and state.cache is self.graphed.cache:
                return self.graphed(x, positions)
            return transformer(x, positions, state.cache)
        start = 0 if state.inputs is None else state.inputs.shape[1]
        if positions[0] != start or positions[-1] != start + x.shape[1] - 1:
            raise ValueError("without the KV cache, tokens must be fed in order")
        state.inputs = x if state.inputs is None else torch.cat([state.inputs, x], dim=1)
        p = state.inputs.shape[1]
        return transformer(state.inputs, torch.arange(p, device=x.device))[:, -x.shape[1] :]

    # ------------------------------------------------------------------ window refresh
    def prefill(self, model: ARWorldModel, state: ARState) -> None:
        """(Re)build ``state``'s window, ``prefix + recent frames``, and run it through the model
        (the last frame's action is not known yet)."""
        frames = state.prefix_tokens + state.tokens
        future = None
        if model.layout.compressive:  # T0 context grids, then future grids
            t0 = model.layout.t0
            if len(frames) > t0:
                future = torch.stack(frames[t0:], dim=1)
            frames = frames[:t0]
        tokens = torch.stack(frames, dim=1)  # [B, T, h, w]
        b = tokens.shape[0]
        acts = state.prefix_actions + state.actions  # one fewer than frames
        actions, null = model.action_encoder.pad(acts, b, tokens.device)  # [B, T, ...], [B, T]
        x = model.action_encoder.embed_sequence(model.embed_ids, tokens, actions, null, future)
        x = x[:, : -(model.layout.k + 1)]  # the last frame has no action yet
        p = x.shape[1]
        state.inputs = None
        if state.cache is None:
            max_len = model.layout.step_start(model.max_frames)
            state.cache = self.new_cache(model.transformer, b, max_len, x.device, x.dtype)
        if state.cache is not None:
            state.cache.reset()
        model.run(state, x, torch.arange(p, device=x.device))
        state.pos = p

    def refresh_window(self, model: ARWorldModel, state: ARState) -> None:
        """When the window is full, keep the newest ``refresh_keep`` frames (compressive:
        re-anchor the newest ``T0`` frames as the context) and prefill again."""
        if model.compressive and len(state.tokens) >= model.max_frames:
            t0 = model.layout.t0
            state.actions = state.actions[len(state.actions) - (t0 - 1) :] if t0 > 1 else []
            model.anchor(state, torch.stack(state.recent_frames[-t0:], dim=1))
            self.prefill(model, state)
        elif len(state.prefix_tokens) + len(state.tokens) >= model.max_frames:
            keep = min(
                self.frames_kept(model.max_frames), model.max_frames - len(state.prefix_tokens) - 1
            )
            keep = max(keep, 1)
            state.tokens = state.tokens[-keep:]
            state.actions = state.actions[len(state.actions) - (keep - 1) :] if keep > 1 else []
            self.prefill(model, state)

    # ------------------------------------------------------------------ one step
    def decode_grid(
        self, feed: FeedFn, first: Tensor, model: ARWorldModel, state: ARState
    ) -> Tensor:
        """The next frame's ids ``[B, h, w]`` from the logits ``first`` ``[B, V]`` of its first
        token, feeding tokens back through ``feed``."""
        raise NotImplementedError

    def step(self, model: ARWorldModel, state: ARState, action: Tensor) -> StepOutput:
        """Feed ``action`` and its slot, then decode the next frame (``ARWorldModel.step``).
        With ``k``-frame latent steps (``ARWorldModel.step_latent``) ``action`` is a latent's
        chunk of ``k`` actions and ``frame``, ``reward`` and ``done`` hold its ``k`` frames."""
        b = state.tokens[-1].shape[0]
        self.refresh_window(model, state)
        layout = model.layout
        device = state.tokens[-1].device
        guided = self.guidance_scale != 1.0
        run = self.twin(state) if guided else state  # rows: action, then null
        x = model.action_encoder.slot_inputs(model.embed_ids, action, b, device)  # [B, K + 1, D]
        if guided:
            x = torch.cat([x, model.action_encoder.slot_inputs(model.embed_ids, None, b, device)])
        positions = state.pos + torch.arange(layout.k + 1, device=device)
        slots = model.run(run, x, positions)[:, -1]  # [B (x2), D]
        slot = slots[:b]
        reward = model.reward_head(slot).squeeze(-1).float()
        done = (model.done_head(slot).squeeze(-1) > 0).float()
        base = state.pos + layout.k + 1
        roles = layout.frame_roles(device)

        def feed(tok: Tensor, index: Tensor) -> Tensor:
            x = model.embed_ids(tok + layout.future_offset, roles[index])
            h = model.run(run, torch.cat([x, x]) if guided else x, base + index)
            return self.guided(model.frame_head(h))  # [B, S, V]

        grid = self.decode_grid(feed, self.guided(model.frame_head(slots)), model, state)
        if guided:
            self.keep_action_rows(state, run, b)
        state.pos = base + layout.n
        frame = model.finish_frame(state, grid, action)
        return StepOutput(frame=frame, reward=reward, state=state, done=done)

    def rollout(
        self,
        model: ARWorldModel,
        context_frames: Tensor,
        actions: Tensor,
        context_actions: Tensor | None = None,
    ) -> Rollout:
        """``reset`` + ``step`` per action (the protocol's definition)."""
        return StepwiseRolloutMixin.rollout(model, context_frames, actions, context_actions)

    # ------------------------------------------------------------------ action guidance
    @staticmethod
    def twin(state: ARState) -> ARState:
        """A state whose cache (or recomputed inputs) holds ``state``'s rows twice: the action
        branch, then the null-action branch (same history)."""
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
    def keep_action_rows(state: ARState, twin: ARState, b: int) -> None:
        """After a guided step, keep the action branch's cache (the null branch is dropped)."""
        if twin.cache is not None and state.cache is not None:
            state.cache.keys = [k[:b] for k in twin.cache.keys]
            state.cache.values = [v[:b] for v in twin.cache.values]
            state.cache.end = twin.cache.end
        elif twin.inputs is not None:
            state.inputs = twin.inputs[:b]

    def guided(self, logits: Tensor) -> Tensor:
        """Action guidance on ``[2B, ..., V]`` logits (action rows, then null rows) → ``[B, ...,
        V]`` log-probabilities; unchanged when guidance is off."""
        if self.guidance_scale == 1.0:
            return logits
        cond, null = logits.float().log_softmax(-1).chunk(2)
        return null + self.guidance_scale * (cond - null)
