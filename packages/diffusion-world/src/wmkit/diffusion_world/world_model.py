"""``DiffusionWorldModel``: a causal, action-conditioned video diffusion world model.

It composes parts passed in, as diffusers' pipelines do (DESIGN.md §5a):

- a network (:mod:`~wmkit.diffusion_world.networks`: any causal video network named by
  ``class_path``; the native :class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` or a
  causalized diffusers network) and an objective
  (:mod:`~wmkit.diffusion_world.objectives`: DDPM-family, EDM or flow), joined in a
  :class:`~wmkit.diffusion_world.frame_denoiser.FrameDenoiser` that owns the Diffusion
  Forcing loss (arXiv:2407.01392);
- the objective's next-frame sampler with causal action guidance (Vid2World §3.2), run over a
  sliding or carried window (:class:`~wmkit.diffusion_world.window_sampler.WindowSampler`);
- optional reward and termination heads
  (:class:`~wmkit.diffusion_world.transition_heads.TransitionHeads`).

The model itself keeps what ties them to the ``wmkit.core.WorldModel`` protocol: encoding and
decoding (pixels, or the continuous latents of a frozen ``wmkit.core.Tokenizer``, saved with
the model in ``tokenizer/``; :mod:`~wmkit.diffusion_world.model_space`), the per-frame action
conditions (frame ``i`` is conditioned on
action ``i - 1``), ``reset`` / ``step`` / ``rollout`` and save/load. ``config.json`` files
written by 0.1.x (flat arguments) load through :meth:`DiffusionWorldModel.upgrade_config`.
With ``frames_per_step = k > 1`` it runs in the latents of a tokenizer with temporal
compression ``k``, one latent (``k`` frames) per step (:mod:`~wmkit.diffusion_world.latent_steps`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from wmkit.core import (
    ActionSpec,
    PretrainedMixin,
    StepOutput,
    StepwiseRolloutMixin,
    Tokenizer,
    build_component,
    check_video,
    check_world_model_inputs,
    load_pretrained,
)
from wmkit.core.latent_steps import (
    BufferedState,
    buffered_step,
    num_latent_steps,
    step_action_spec,
)
from wmkit.diffusion_world.action_embedding import ActionEmbedding
from wmkit.diffusion_world.frame_denoiser import DiffusionLoss, FrameDenoiser
from wmkit.diffusion_world.head_training import HeadTrainingMixin
from wmkit.diffusion_world.latent_steps import (
    LatentStepsMixin,
    check_latent_steps,
    latent_conditions,
)
from wmkit.diffusion_world.legacy_config import upgrade_flat_config, upgrade_flat_state_dict
from wmkit.diffusion_world.model_space import ModelSpaceMixin
from wmkit.diffusion_world.networks import (
    build_network,
    check_network,
    default_network_spec,
    saved_network_spec,
)
from wmkit.diffusion_world.objectives import DDPMObjective, Objective, build_objective
from wmkit.diffusion_world.sampler import SamplingConfig
from wmkit.diffusion_world.state import DiffusionState
from wmkit.diffusion_world.transition_heads import HeadsConfig, TransitionHeads
from wmkit.diffusion_world.window_sampler import WindowSampler

__all__ = ["DiffusionLoss", "DiffusionWorldModel"]


class DiffusionWorldModel(
    nn.Module,
    ModelSpaceMixin,
    HeadTrainingMixin,
    LatentStepsMixin,
    PretrainedMixin,
    StepwiseRolloutMixin,
):
    """Causal, action-conditioned video diffusion world model.

    Args:
        action_spec: the actions it takes.
        network: the denoising network, or its ``{"class_path", "init_args"}``
            (:func:`~wmkit.diffusion_world.networks.build_network`; only a network given so is
            saved by ``save_pretrained``); it sees ``channels`` channels (twice that with
            ``residual``) of ``image_size`` frames. ``None``: the tiny
            :class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` for them.
        objective: the diffusion objective, or its ``{"class_path", "init_args"}``
            (``None``: :class:`~wmkit.diffusion_world.objectives.DDPMObjective`).
        channels: channels the network sees (3 for pixels; the latent channels).
        image_size: height and width the network sees (pixels or latents).
        residual: diffuse the change from the clean previous frame, which the network also
            sees as extra channels (:mod:`~wmkit.diffusion_world.frame_denoiser`).
        action_dropout: per-frame probability of dropping the action in training.
        clean_history_prob: per-frame probability of a clean, loss-free context frame in
            training (``None``: the objective's default).
        sampling: how ``step`` / ``rollout`` generate frames (``None``: the defaults).
        heads: reward / termination heads (``None``: none).
        tokenizer: local path of a saved continuous wmkit tokenizer (frozen), or its
            ``{"class_path", "init_args"}``; ``None`` works on pixels (or on a tokenizer
            attached with :meth:`set_tokenizer`).
        latent_scale: latents are multiplied by this before diffusion.
        anchored_decoding: with a tokenizer, decode each generated frame as the last real
            frame plus the decoded change since it, ``x_a + D(z) - D(z_a)``, so the
            tokenizer's reconstruction error cancels wherever the scene did not change.
        frames_per_step: ``k``, the frames of one latent step: ``k > 1`` needs a tokenizer of
            temporal compression ``k`` and no heads or anchored decoding; latent ``j >= 1``
            is conditioned on actions ``(j-1)·k … j·k - 1`` together, latent 0 (frame 0
            alone) on the "no action" vector (:mod:`~wmkit.diffusion_world.latent_steps`).
    """

    frozen_components = ("tokenizer",)  # saved in tokenizer/ (PretrainedMixin)

    def __init__(
        self,
        action_spec: ActionSpec,
        network: dict[str, Any] | nn.Module | None = None,
        objective: Objective | dict[str, Any] | None = None,
        channels: int = 3,
        image_size: int = 16,
        residual: bool = False,
        action_dropout: float = 0.1,
        clean_history_prob: float | None = None,
        sampling: SamplingConfig | None = None,
        heads: HeadsConfig | None = None,
        tokenizer: str | dict[str, Any] | None = None,
        latent_scale: float = 1.0,
        anchored_decoding: bool = False,
        frames_per_step: int = 1,
    ) -> None:
        super().__init__()
        check_latent_steps(frames_per_step, heads, anchored_decoding)
        self.frames_per_step = frames_per_step
        action_spec = ActionSpec.coerce(action_spec, "DiffusionWorldModel action_spec")
        sampling = _as(SamplingConfig, sampling)
        heads = None if heads is None else _as(HeadsConfig, heads)
        obj = build_objective(DDPMObjective() if objective is None else objective)
        if sampling.history_noise_level and not obj.noisy_history:
            raise ValueError(
                f"history_noise_level is for the DDPM objective; {type(obj).__name__}'s sampler "
                f"keeps the history clean (got {sampling.history_noise_level})"
            )
        if network is None:
            network = default_network_spec(channels, image_size, residual)
        self._action_spec = action_spec
        self.channels, self.image_size = channels, image_size
        self.latent_scale, self.anchored_decoding = latent_scale, anchored_decoding
        self.sampling = sampling
        net = network if isinstance(network, nn.Module) else build_network(network)
        check_network(net, channels, sampling.cuda_graphs)
        if self._hub_mixin_config is not None:  # what save_pretrained writes
            saved = {**self._hub_mixin_config, "objective": obj.to_config()}
            if isinstance(network, dict):
                saved["network"] = saved_network_spec(network, net)
            else:  # a network object has no config to write: save_pretrained refuses
                saved.pop("network", None)
            self._hub_mixin_config = saved
        self.denoiser = FrameDenoiser(
            net, obj, residual, action_dropout, clean_history_prob, sampling.history_cache,
            sampling.cuda_graphs,
        )  # fmt: skip
        self.action_embed = ActionEmbedding(
            step_action_spec(action_spec, frames_per_step), net.cond_dim
        )
        self.heads = None
        if heads is not None:
            self.heads = TransitionHeads(
                action_spec, channels, heads.reward, heads.done, heads.hidden
            )
        self._tokenizer: Tokenizer | None = None
        # predicted samples are clipped to [-1, 1] on pixels only (set_tokenizer turns it off):
        # residuals span [-2, 2] and latents are unbounded
        obj.set_clip_sample(not residual)
        sampler = obj.make_sampler(
            sampling.num_steps, sampling.guidance_scale, sampling.history_noise_level
        )
        self.window = WindowSampler(
            self.denoiser, sampler, sampling.context_window, sampling.carry_history
        )
        if isinstance(tokenizer, dict):
            self.set_tokenizer(build_component(tokenizer, Tokenizer, "tokenizer"))
        elif tokenizer is not None:
            self.set_tokenizer(load_pretrained(tokenizer))

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """0.1.x's flat arguments (``network="dit"``, ``objective="edm"``, ``sigma_data``,
        ``num_sampling_steps``, ``reward_head``, ...) as today's components."""
        return upgrade_flat_config(config)

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """0.1.x weights: the network moved into ``denoiser``, the heads into ``heads``."""
        return upgrade_flat_state_dict(state)

    # ------------------------------------------------------------------ components
    @property
    def network(self) -> nn.Module:
        return self.denoiser.network

    @property
    def sampler(self) -> Any:
        """The objective's next-frame sampler."""
        return self.window.sampler

    @property
    def reward_head(self) -> nn.Module | None:
        return None if self.heads is None else self.heads.reward

    @property
    def done_head(self) -> nn.Module | None:
        return None if self.heads is None else self.heads.done

    @property
    def residual(self) -> bool:
        return self.denoiser.residual

    @property
    def context_window(self) -> int:
        return self.sampling.context_window

    @property
    def cuda_graphs(self) -> bool:
        return self.denoiser.cuda_graphs

    @cuda_graphs.setter
    def cuda_graphs(self, value: bool) -> None:
        self.denoiser.cuda_graphs = value

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    # ------------------------------------------------------------------ conditioning
    def frame_conditions(self, actions: Tensor | None, num_frames: int, batch: int) -> Tensor:
        """Per-frame conditions ``[B, T, D]``: frame ``i`` gets action ``i - 1``; frame 0 and
        frames without a known action get the "no action" vector. ``k > 1``: per-latent
        conditions ``[B, 1 + (T - 1) // k, D]`` of a clip of ``T`` frames
        (:func:`~wmkit.diffusion_world.latent_steps.latent_conditions`)."""
        k = self.frames_per_step
        num = 1 + (num_frames - 1) // k
        return latent_conditions(self.action_embed, self.action_spec, k, actions, num, batch)

    def forward(
        self, x: Tensor, levels: Tensor, cond: Tensor, base: Tensor | None = None
    ) -> Tensor:
        """The denoiser's prediction (:meth:`FrameDenoiser.forward`)."""
        return self.denoiser(x, levels, cond, base)

    def _apply(self, fn: Any, recurse: bool = True) -> DiffusionWorldModel:
        super()._apply(fn, recurse)
        if isinstance(self._tokenizer, nn.Module):  # frozen, not a submodule: move it too
            self._tokenizer._apply(fn, recurse)
        return self

    # ------------------------------------------------------------------ training
    def loss(
        self, frames: Tensor, actions: Tensor | None = None, latents: Tensor | None = None
    ) -> DiffusionLoss:
        """Diffusion Forcing loss (:meth:`FrameDenoiser.loss`) on a clip ``frames [B, T, C, H,
        W]``, ``actions [B, T, ...]`` (action ``t`` follows frame ``t``; the last one is
        unused). ``latents``: ``encode(frames)`` when the caller has it already (the tokenizer
        then runs once per batch for this loss and the heads'). ``k > 1``: clips of ``1 + n·k``
        frames, each latent step's ``k`` actions one condition."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        num_latent_steps(t, self.frames_per_step, "training clips")
        if actions is not None:
            self.action_spec.validate(actions)
            if actions.shape[:2] != (b, t) and actions.shape[:2] != (b, t - 1):
                raise ValueError(
                    f"actions must be [B, T, ...] or [B, T - 1, ...] for frames [B, T] = "
                    f"{(b, t)}; got {tuple(actions.shape)}"
                )
        x = self._encoded(frames, latents)  # [B, T', c, h, w]
        cond = self.frame_conditions(actions, t, b)  # [B, T', D]
        return self.denoiser.loss(x, cond, self.action_embed.null_like(cond.shape[:2]))

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.denoiser.set_gradient_checkpointing(enabled)

    # ------------------------------------------------------------------ WorldModel protocol
    @torch.no_grad()
    def reset(
        self, context_frames: Tensor, context_actions: Tensor | None = None
    ) -> DiffusionState | BufferedState:
        """The state after ``context_frames``; ``k > 1``: the last ``1 + n·k`` of them."""
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        if self.frames_per_step > 1:
            return self._reset_latent_steps(context_frames, context_actions)
        b, t0 = context_frames.shape[:2]
        keep = self.context_window - 1
        x = self.encode(context_frames)  # [B, T0, c, h, w]
        cond = self.frame_conditions(context_actions, t0, b)  # [B, T0, D]
        offset = None
        if self.anchored_decoding and self._tokenizer is not None:
            # x_a - D(z_a): what anchored decoding adds to every decoded frame
            last = context_frames[:, -1:].to(x.dtype)
            offset = (last - self._decode_raw(x[:, -1:]))[:, 0]
        return DiffusionState(
            t=t0, frames=context_frames[:, -keep:], x=x[:, -keep:], cond=cond[:, -keep:],
            anchor_offset=offset,
        )  # fmt: skip

    @torch.no_grad()
    def step(self, state: DiffusionState | BufferedState, action: Tensor) -> StepOutput:
        """The next frame; ``k > 1``: :func:`~wmkit.core.latent_steps.buffered_step`."""
        if self.frames_per_step > 1:
            return buffered_step(self, state, action)  # type: ignore[arg-type]
        self.action_spec.validate(action, name="action", batch_dims=1)
        hist, hist_cond = state.x, state.cond
        if action.shape[0] != hist.shape[0]:
            raise ValueError(
                f"action has batch size {action.shape[0]} but the state has {hist.shape[0]}"
            )
        cond = self.action_embed(action)  # [B, D]
        null = self.action_embed.null_like((action.shape[0],))
        new, kv = self.window.next_frame(hist, hist_cond, cond, null, state.kv)

        offset = state.anchor_offset
        if offset is None:
            frame = self.decode(new[:, None])[:, 0]  # [B, C, H, W]
        else:  # anchored decoding: x_a + D(z) - D(z_a)
            frame = (self._decode_raw(new[:, None])[:, 0] + offset).clamp(-1, 1)
        # the heads read the generated frame, as the frames they trained on
        heads = {} if self.heads is None else self.heads(hist[:, -1], self._head_view(new), action)
        new_state = state.advanced(new, cond, frame[:, None], kv, self._keep(kv))
        return StepOutput(frame, heads.get("reward"), new_state, heads.get("done"))


def _as(cls: type, value: Any) -> Any:
    """A config dataclass from itself, its dict or ``None`` (its defaults)."""
    if value is None:
        return cls()
    return cls(**value) if isinstance(value, dict) else value
