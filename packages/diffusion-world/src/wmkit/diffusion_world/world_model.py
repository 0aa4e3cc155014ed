"""``DiffusionWorldModel``: Diffusion Forcing training and causal, action-guided rollouts.

One class serves every network of the package: the native
:class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` and a causalized diffusers
``UNetSpatioTemporalConditionModel`` or ``UNet3DConditionModel``
(:func:`~wmkit.diffusion_world.causalize.causalize`, optionally from pretrained weights on a
local path). It works on pixels by default, or on
the continuous latents of any ``wmkit.core.Tokenizer`` (loaded frozen from a local path, or
attached with :meth:`DiffusionWorldModel.set_tokenizer`). ``save_pretrained`` writes that
tokenizer into the model's directory (``tokenizer/``), so a saved world model loads from any
working directory and can be copied elsewhere in one piece.

Training (:meth:`DiffusionWorldModel.loss`, Diffusion Forcing, arXiv:2407.01392): every
frame of a clip gets an independent noise level; the network is strictly causal over time;
the loss covers all frames. Frame ``i``'s condition is the embedding of action ``i - 1``
(the action that led to it; "no action" for the first frame), dropped independently per
frame with probability ``action_dropout`` so one network learns the conditional and the
unconditional predictions needed by causal action guidance.

Sampling (``reset`` / ``step`` / ``rollout``, the ``wmkit.core.WorldModel`` protocol):
:class:`~wmkit.diffusion_world.sampler.NextFrameSampler` denoises the newest frame with
the history clean (or lightly noised) inside a sliding window of ``context_window`` frames,
so rollouts can run longer than the training clips.

Options (off by default, so 0.1.0 configs behave as before) that target next-frame quality:

- ``objective="edm"``: EDM preconditioning and noise levels (:mod:`~wmkit.diffusion_world.edm`,
  as DIAMOND), sampled with diffusers' ``EDMEulerScheduler``.
- ``residual=True``: the diffusion runs on the *change* from the previous clean frame,
  ``y_t = x_t - x_{t-1}``, and the network also sees ``x_{t-1}`` as extra input channels (the
  way DIAMOND and GameNGen condition on clean past frames). With the zero-initialised output
  of the DiT an untrained model predicts ``y = 0``, i.e. it starts as copy-last-frame, and
  only learns what changes. Where this meets Diffusion Forcing: the base ``x_{t-1}`` is always
  the *clean* previous frame (at sampling the history is clean anyway), so frame ``t``'s
  output still depends on frames ``< t`` only, while the network's own inputs keep their
  independent per-frame noise levels. The first frame of a clip (or window) has no previous
  frame: its base is zeros, it is kept clean and gets no loss (it is context only).
- ``objective="flow"``: flow matching / rectified flow (:mod:`~wmkit.diffusion_world.flow`):
  ``x_t = (1 - t) x0 + t ε`` with ``t ~ U(0, 1)`` per frame, the network predicts the velocity
  ``ε - x0``, sampled with diffusers' ``FlowMatchEulerDiscreteScheduler`` (1+ Euler steps).
- ``clean_history_prob``: each training frame is kept clean (level 0, no loss) with this
  probability, so the network learns from the clean-history situation it meets while
  sampling (needed by ``edm``, whose training noise levels never reach 0; default 0.5 there).
- ``reward_head=True``: a tiny separate CNN (:class:`~wmkit.diffusion_world.reward_head.RewardHead`)
  predicts each transition's reward from (previous frame, action, new frame); trained by
  :meth:`DiffusionWorldModel.reward_loss` on clean frames (and, with
  :meth:`DiffusionWorldModel.generated_head_losses`, on next frames the model samples itself),
  applied to the generated frame in
  ``step`` (``StepOutput.reward``) and ``rollout`` (``Rollout.rewards``). ``done_head=True``:
  a second one of the same shape predicts whether the transition ends the episode
  (:meth:`DiffusionWorldModel.done_loss`, BCE; ``StepOutput.done``, ``Rollout.dones``), which
  imagined training episodes (``wmkit-agents``) end on.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from wmkit.core import (
    ActionSpec,
    PretrainedMixin,
    StepOutput,
    StepwiseRolloutMixin,
    Tokenizer,
    check_video,
    check_world_model_inputs,
    follow_device,
    load_pretrained,
)
from wmkit.diffusion_world.action_embedding import ActionEmbedding
from wmkit.diffusion_world.causal_layers import TemporalConvRule
from wmkit.diffusion_world.frame_denoiser import DiffusionLoss, FrameDenoiser
from wmkit.diffusion_world.networks import build_network, check_network, network_spec
from wmkit.diffusion_world.objectives import DDPMObjective, EDMObjective, FlowObjective, Objective
from wmkit.diffusion_world.sampler import Denoiser
from wmkit.diffusion_world.schedulers import PredictionType, SamplerName
from wmkit.diffusion_world.state import DiffusionState
from wmkit.diffusion_world.transition_heads import HEAD_LOSSES, TransitionHeads

__all__ = ["DiffusionLoss", "DiffusionWorldModel"]


class DiffusionWorldModel(nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """Causal, action-conditioned video diffusion world model.

    Args:
        action_spec: the actions it takes.
        network: ``"dit"`` (native spatio-temporal DiT), ``"svd_unet"`` (causalized
            diffusers ``UNetSpatioTemporalConditionModel``), ``"unet3d"`` (causalized
            diffusers ``UNet3DConditionModel``) or ``"wan"`` (causalized diffusers
            ``WanTransformer3DModel``, ``wan.py``).
        size: named size of the network (``DIT_SIZES`` / ``SVD_UNET_SIZES`` /
            ``UNET3D_SIZES`` / ``WAN_SIZES``).
        network_kwargs: overrides of the size's arguments (DiT ``__init__`` arguments or
            the diffusers network's config).
        pretrained_network: diffusers networks only: local diffusers directory of a
            pretrained network of the ``network``'s class (for Wan, a pipeline's
            ``transformer/``), loaded then causalized (its config replaces
            ``size``/``network_kwargs``). ``save_pretrained`` records that network's config
            in ``network_kwargs`` instead (its weights are in ``model.safetensors``), so the
            saved model no longer needs the directory.
        temporal_conv: UNets only: temporal-conv weight transfer (``shift``, ``masked``,
            ``extrapolative``).
        channels: channels the network sees (3 for pixels; the latent channels).
        image_size: height and width the network sees (pixels or latents).
        tokenizer: local path of a saved continuous wmkit tokenizer (frozen, loaded with
            ``wmkit.core.load_pretrained``); ``None`` works on pixels (or on a tokenizer
            attached with ``set_tokenizer``). ``save_pretrained`` saves the tokenizer in the
            subdirectory ``tokenizer/`` and records ``"./tokenizer"``, which
            ``from_pretrained`` resolves against the model's directory.
        latent_scale: latents are multiplied by this before diffusion.
        anchored_decoding: with a tokenizer, decode each generated frame as the latest real
            frame plus the decoded change since it, ``x_a + D(z) - D(z_a)`` (``x_a`` the
            last context frame, ``z_a`` its latent). The tokenizer's reconstruction error
            then cancels wherever the scene did not change: with ``residual`` an untrained
            model is exactly copy-last-frame instead of its reconstruction, and a small
            tokenizer no longer caps what the world model can score (the quickstart's
            measurement is in ``packages/wmkit/README.md``). The anchor stays the last real
            frame for the whole rollout.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        num_train_timesteps: diffusion steps of the training schedule.
        beta_schedule: diffusers beta schedule name.
        action_dropout: per-frame probability of dropping the action in training.
        sampler: ``"ddpm"``, ``"ddim"``, ``"euler"`` or ``"dpm"``.
        num_sampling_steps: denoising steps per generated frame.
        guidance_scale: causal action guidance scale (1: none; 0: unconditional).
        history_noise_level: timestep the history is noised to while sampling.
        context_window: frames the network sees at once while sampling (history + new).
        objective: ``"ddpm"`` (diffusers' DDPM forward process, ``prediction_type``,
            ``sampler``), ``"edm"`` (EDM preconditioning, Euler sampling with diffusers'
            ``EDMEulerScheduler``) or ``"flow"`` (flow matching, velocity prediction, Euler
            sampling with diffusers' ``FlowMatchEulerDiscreteScheduler``);
            ``prediction_type``/``sampler``/``beta_schedule`` are for ``ddpm`` only.
        residual: diffuse the change from the clean previous frame, which the network also
            sees as extra channels; an untrained model equals copy-last-frame (``dit`` only).
        clean_history_prob: per-frame probability of a clean, loss-free context frame in
            training (``None``: 0.5 for ``edm``, else 0).
        sigma_data: ``edm``: standard deviation of what is diffused (frames, or frame changes
            with ``residual``); ``flow`` with ``residual``: that of the frame changes (sets the
            velocity skip, :func:`~wmkit.diffusion_world.flow.gaussian_velocity_skip`).
        sigma_min: ``edm``: smallest sampling noise level.
        sigma_max: ``edm``: largest sampling noise level (where sampling starts).
        p_mean: ``edm``: mean of ``ln σ`` in training.
        p_std: ``edm``: standard deviation of ``ln σ`` in training.
        flow_shift: ``flow``: diffusers' timestep shift of the sampling schedule (1: none).
        reward_head: add a reward head (:class:`RewardHead`); ``step`` then returns rewards.
        reward_hidden: width of the reward head (and of the done head).
        done_head: add a termination head (a second :class:`RewardHead`, whose output is the
            logit of the transition ending the episode); ``step`` then returns
            ``StepOutput.done`` (``1.0`` where the logit is positive) and ``rollout`` the
            ``dones``.
        cuda_graphs: at inference on CUDA, replay the DiT's calls as CUDA graphs (one per input
            shape; ``wmkit.diffusion_world.cuda_graphs``): the same outputs, without the
            per-kernel launch cost that bounds batch-1 rollouts. DiT only.
        history_cache: compute the history's part of the network once per generated frame
            and run each denoising step on the new frame alone (the DiT's keys and values,
            ``dit.py``; the state of the diffusers networks' frame-mixing layers,
            ``temporal_cache.py``; equal to recomputing the window up to float rounding,
            tested). Used when a frame takes more than one network call (several steps, or
            guidance); ``False`` recomputes the whole window at every step, as Diffusion
            Forcing and Vid2World do.
        carry_history: carry the history cache from frame to frame instead of
            sliding the window by a frame per generated frame. The window grows, each new
            frame's cache appended for the cost of one frame (the networks'
            ``append_kv``); once it holds ``context_window - 1`` frames and
            a frame is generated, it is cut to the last ``refresh_keep`` frames, re-encoded at
            the next step (MineWorld's cache refresh, as ``wmkit-ar-world`` does). A frame
            then costs ``1 + steps × branches`` frame-passes instead of ``L + steps ×
            branches`` with ``history_cache`` (``L``: the history's length) or ``L + 1`` at
            one step. The history is between ``refresh_keep`` and ``context_window - 1``
            frames long instead of always the longest, so once the window is full the
            outputs differ from the sliding window's (``refresh_keep=context_window - 1``
            refreshes every frame and equals it). Needs ``history_noise_level=0``.
        refresh_keep: ``carry_history``: frames kept at a refresh, in ``[1, context_window -
            1]`` (default ``context_window // 2``).
    """

    frozen_components = ("tokenizer",)  # saved in tokenizer/ (PretrainedMixin)

    def __init__(
        self,
        action_spec: ActionSpec,
        network: Literal["dit", "svd_unet", "unet3d", "wan"] = "dit",
        size: str = "tiny",
        network_kwargs: dict[str, Any] | None = None,
        pretrained_network: str | None = None,
        temporal_conv: TemporalConvRule = "extrapolative",
        channels: int = 3,
        image_size: int = 16,
        tokenizer: str | None = None,
        latent_scale: float = 1.0,
        anchored_decoding: bool = False,
        prediction_type: PredictionType = "v_prediction",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        action_dropout: float = 0.1,
        sampler: SamplerName = "ddim",
        num_sampling_steps: int = 4,
        guidance_scale: float = 1.0,
        history_noise_level: int = 0,
        context_window: int = 8,
        objective: Literal["ddpm", "edm", "flow"] = "ddpm",
        residual: bool = False,
        clean_history_prob: float | None = None,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 5.0,
        p_mean: float = -0.4,
        p_std: float = 1.2,
        flow_shift: float = 1.0,
        reward_head: bool = False,
        reward_hidden: int = 32,
        done_head: bool = False,
        cuda_graphs: bool = False,
        history_cache: bool = True,
        carry_history: bool = False,
        refresh_keep: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(action_spec, dict):
            action_spec = ActionSpec.from_dict(action_spec)
        if context_window < 2:
            raise ValueError(f"context_window must be >= 2; got {context_window}")
        if objective not in ("ddpm", "edm", "flow"):
            raise ValueError(f"objective must be 'ddpm', 'edm' or 'flow'; got {objective!r}")
        if cuda_graphs and network != "dit":
            raise ValueError(f"cuda_graphs=True needs network='dit'; got network={network!r}")
        if residual and network != "dit":
            raise ValueError(f"residual=True needs network='dit'; got network={network!r}")
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0; got {sigma_data}")
        obj: Objective
        if objective == "ddpm":
            obj = DDPMObjective(prediction_type, num_train_timesteps, beta_schedule, sampler)
        elif objective == "edm":
            obj = EDMObjective(sigma_data, sigma_min, sigma_max, p_mean, p_std)
        else:
            obj = FlowObjective(flow_shift, sigma_data, num_train_timesteps)
        if history_noise_level and not obj.noisy_history:
            raise ValueError(
                f"history_noise_level is for objective='ddpm'; the {objective} sampler keeps the "
                f"history clean (got {history_noise_level})"
            )
        if carry_history and history_noise_level:
            raise ValueError(
                "carry_history=True needs a clean history (history_noise_level=0): a noised "
                "history is drawn anew for every frame"
            )
        keep = context_window // 2 if refresh_keep is None else refresh_keep
        if not 1 <= keep < context_window and carry_history:
            raise ValueError(
                f"refresh_keep must be in [1, context_window - 1] = [1, {context_window - 1}]; "
                f"got {keep}"
            )
        self._action_spec = action_spec
        self.channels, self.image_size = channels, image_size
        self.latent_scale = latent_scale
        self.anchored_decoding = anchored_decoding
        self.context_window = context_window
        spec = network_spec(
            network, size, network_kwargs, pretrained_network, temporal_conv, channels,
            image_size, residual,
        )  # fmt: skip
        net = build_network(spec)
        check_network(net, channels, False)
        if pretrained_network is not None and self._hub_mixin_config is not None:
            # saved by its architecture: from_pretrained rebuilds it without the directory
            base = net.diffusers_model
            base_config = {k: v for k, v in base.config.items() if k[0] != "_"}
            self._hub_mixin_config = {
                **self._hub_mixin_config, "pretrained_network": None, "network_kwargs": base_config,
            }  # fmt: skip
        self.denoiser = FrameDenoiser(
            net, obj, residual, action_dropout, clean_history_prob, history_cache, cuda_graphs
        )
        self.action_embed = ActionEmbedding(action_spec, net.cond_dim)
        self.carry_history, self.refresh_keep = carry_history, keep
        self.heads = None
        if reward_head or done_head:
            if reward_hidden < 1:
                raise ValueError(f"reward_hidden must be >= 1; got {reward_hidden}")
            self.heads = TransitionHeads(
                action_spec, channels, reward_head, done_head, reward_hidden
            )
        self._tokenizer: Tokenizer | None = None
        # predicted samples are clipped to [-1, 1] on pixels only (set_tokenizer turns it off):
        # residuals span [-2, 2] and latents are unbounded
        obj.set_clip_sample(not residual)
        self.sampler = obj.make_sampler(num_sampling_steps, guidance_scale, history_noise_level)
        if tokenizer is not None:
            self.set_tokenizer(load_pretrained(tokenizer))

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """0.1.x weights: the network moved into ``denoiser``, the heads into ``heads``."""
        renames = {"network.": "denoiser.network.", "reward_head.": "heads.reward.",
                   "done_head.": "heads.done."}  # fmt: skip
        out = {}
        for key, value in state.items():
            for old, new in renames.items():
                if key.startswith(old):
                    key = new + key[len(old) :]
                    break
            out[key] = value
        return out

    # ------------------------------------------------------------------ components
    @property
    def network(self) -> nn.Module:
        """The denoiser's network."""
        return self.denoiser.network

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
    def cuda_graphs(self) -> bool:
        return self.denoiser.cuda_graphs

    @cuda_graphs.setter
    def cuda_graphs(self, value: bool) -> None:
        self.denoiser.cuda_graphs = value

    @property
    def train_scheduler(self) -> Any:
        """The DDPM objective's training scheduler (``None`` for the others)."""
        return getattr(self.denoiser.objective, "scheduler", None)

    # ------------------------------------------------------------------ tokenizer / spaces
    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Tokenizer | None) -> DiffusionWorldModel:
        """Work on ``tokenizer``'s latents (frozen; ``None``: on pixels). Returns self.

        The tokenizer is not a submodule (its weights are not in the model's state dict), but
        ``save_pretrained`` saves it beside the model (``tokenizer/``), so it must have a
        ``save_pretrained`` of its own for the model to be saved. Predicted samples are
        clipped to [-1, 1] on pixels only, so attaching a tokenizer turns that clipping off
        (as a ``tokenizer=`` path does), and ``None`` turns it back on.
        """
        if tokenizer is not None:
            if not isinstance(tokenizer, Tokenizer) or tokenizer.kind != "continuous":
                raise ValueError(
                    "tokenizer must be a continuous wmkit.core.Tokenizer; got "
                    f"{type(tokenizer).__name__} (kind {getattr(tokenizer, 'kind', None)!r})"
                )
            if tokenizer.temporal_compression != 1:
                raise ValueError(
                    "diffusion world models step one frame at a time: the tokenizer's "
                    f"temporal_compression must be 1; got {tokenizer.temporal_compression}"
                )
            if tokenizer.latent_channels != self.channels:
                raise ValueError(
                    f"tokenizer has {tokenizer.latent_channels} latent channels; channels="
                    f"{self.channels}"
                )
            if isinstance(tokenizer, nn.Module):
                tokenizer.eval().requires_grad_(False)
        # not registered as a submodule: the tokenizer is frozen and saved in its own directory
        object.__setattr__(self, "_tokenizer", tokenizer)
        clip = tokenizer is None and not self.residual
        self.denoiser.objective.set_clip_sample(clip)
        scheduler = getattr(self.sampler, "scheduler", None)
        if scheduler is not None and "clip_sample" in scheduler.config:
            scheduler.register_to_config(clip_sample=clip)
        return self

    def encode(self, video: Tensor) -> Tensor:
        """Video ``[B, T, C, H, W]`` in [-1, 1] → what the network sees ``[B, T, c, h, w]``."""
        check_video(video, "video")
        if self._tokenizer is None:
            x = video
        else:
            follow_device(self._tokenizer, video.device)  # FSDP bypasses _apply
            with torch.no_grad():
                x = self._tokenizer.encode(video).values.float() * self.latent_scale
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(x.shape[2:]) != expected:
            raise ValueError(
                f"video encodes to frames of shape {tuple(x.shape[2:])} but the model expects "
                f"{expected} (channels, image_size, image_size)"
            )
        return x

    def decode(self, x: Tensor) -> Tensor:
        """Model-space frames ``[B, T, c, h, w]`` → video in [-1, 1]."""
        return self._decode_raw(x).clamp(-1, 1)

    def _decode_raw(self, x: Tensor) -> Tensor:
        if self._tokenizer is None:
            return x
        follow_device(self._tokenizer, x.device)
        with torch.no_grad():
            return self._tokenizer.decode(x / self.latent_scale).float()

    # ------------------------------------------------------------------ conditioning
    def frame_conditions(self, actions: Tensor | None, num_frames: int, batch: int) -> Tensor:
        """Per-frame conditions ``[B, T, D]``: frame ``i`` gets action ``i - 1``; frame 0 and
        frames without a known action get the "no action" vector."""
        null = self.action_embed.null_like((batch, 1))
        if actions is None or num_frames == 1:
            return null.expand(batch, num_frames, -1)
        emb = self.action_embed(actions[:, : num_frames - 1])  # [B, T - 1, D]
        return torch.cat([null, emb], dim=1)

    def bases(self, x: Tensor) -> Tensor:
        """``residual``: each frame's base, the previous clean frame (zeros for the first)."""
        return self.denoiser.bases(x)

    def _encoded(self, frames: Tensor, latents: Tensor | None) -> Tensor:
        """``encode(frames)``, or ``latents`` when given (checked against the frames)."""
        if latents is None:
            return self.encode(frames)
        expected = (*frames.shape[:2], self.channels, self.image_size, self.image_size)
        if tuple(latents.shape) != expected:
            raise ValueError(
                f"latents must be encode(frames)'s {expected}; got {tuple(latents.shape)}"
            )
        return latents

    def forward(
        self, x: Tensor, levels: Tensor, cond: Tensor, base: Tensor | None = None
    ) -> Tensor:
        """The denoiser's prediction (:meth:`FrameDenoiser.forward`)."""
        return self.denoiser(x, levels, cond, base)

    def prepare_history(
        self,
        history: Tensor,
        history_levels: Tensor,
        history_cond: Tensor,
        base: Tensor | None = None,
    ) -> Denoiser | None:
        """:meth:`FrameDenoiser.prepare_history`: the one-new-frame denoiser after ``history``."""
        return self.denoiser.prepare_history(history, history_levels, history_cond, base)

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
        then runs once per batch for this loss and the heads')."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if actions is not None:
            self.action_spec.validate(actions)
            if actions.shape[:2] != (b, t) and actions.shape[:2] != (b, t - 1):
                raise ValueError(
                    f"actions must be [B, T, ...] or [B, T - 1, ...] for frames [B, T] = "
                    f"{(b, t)}; got {tuple(actions.shape)}"
                )
        x = self._encoded(frames, latents)  # [B, T, c, h, w]
        cond = self.frame_conditions(actions, t, b)  # [B, T, D]
        return self.denoiser.loss(x, cond, self.action_embed.null_like((b, t)))

    def reward_loss(
        self, frames: Tensor, actions: Tensor, rewards: Tensor, latents: Tensor | None = None
    ) -> Tensor:
        """MSE of the reward head on a clip's transitions: reward ``t`` (``rewards [B, T]``)
        from frames ``t``, ``t + 1`` (``frames [B, T, C, H, W]``, clean) and action ``t``
        (``actions [B, T, ...]``); the last reward has no next frame and is unused.
        ``latents``: ``encode(frames)``, when already computed."""
        if self.reward_head is None:
            raise ValueError("this model has no reward head; build it with reward_head=True")
        pred, target = self._transition_outputs("rewards", frames, actions, rewards, latents)
        return TransitionHeads.loss("rewards", pred, target)

    def done_loss(
        self, frames: Tensor, actions: Tensor, dones: Tensor, latents: Tensor | None = None
    ) -> Tensor:
        """Binary cross-entropy of the done head on a clip's transitions: done ``t``
        (``dones [B, T]``, 0/1: action ``t`` ended the episode) from frames ``t``, ``t + 1``
        and action ``t``, as :meth:`reward_loss`."""
        if self.done_head is None:
            raise ValueError("this model has no done head; build it with done_head=True")
        logits, target = self._transition_outputs("dones", frames, actions, dones, latents)
        return TransitionHeads.loss("dones", logits, target)

    def _transition_outputs(
        self,
        key: str,
        frames: Tensor,
        actions: Tensor,
        targets: Tensor,
        latents: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Head ``key`` (``"rewards"`` / ``"dones"``) on every transition ``(frame t, action t,
        frame t + 1)`` of a clip → ``(outputs [B, T - 1], targets [B, T - 1])``, the inputs
        checked."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if t < 2:
            raise ValueError(f"{key[:-1]}_loss needs clips of >= 2 frames; got {t}")
        self.action_spec.validate(actions)
        if actions.shape[:2] not in ((b, t), (b, t - 1)):
            raise ValueError(
                f"actions must be [B, T, ...] or [B, T - 1, ...] for frames [B, T] = {(b, t)}; "
                f"got {tuple(actions.shape)}"
            )
        TransitionHeads.check_targets(targets, b, t, key)
        x = self._encoded(frames, latents)  # [B, T, c, h, w]
        return self.heads.clip_outputs(key, x, actions), targets[:, : t - 1]

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.denoiser.set_gradient_checkpointing(enabled)

    # ------------------------------------------------------------------ WorldModel protocol
    @torch.no_grad()
    def reset(
        self, context_frames: Tensor, context_actions: Tensor | None = None
    ) -> DiffusionState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
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
    def step(self, state: DiffusionState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        hist, hist_cond = state.x, state.cond
        if action.shape[0] != hist.shape[0]:
            raise ValueError(
                f"action has batch size {action.shape[0]} but the state has {hist.shape[0]}"
            )
        cond = self.action_embed(action)  # [B, D]
        null = self.action_embed.null_like((action.shape[0],))
        new, kv = self._sample_next(hist, hist_cond, cond, null, state.kv)

        offset = state.anchor_offset
        if offset is None:
            frame = self.decode(new[:, None])[:, 0]  # [B, C, H, W]
        else:  # anchored decoding: x_a + D(z) - D(z_a)
            frame = (self._decode_raw(new[:, None])[:, 0] + offset).clamp(-1, 1)
        # the heads read the generated frame, as the frames they trained on
        heads = {} if self.heads is None else self.heads(hist[:, -1], self._head_view(new), action)
        keep = self.context_window - 1
        if kv is None and self.carry_history:  # the window is full: refresh (carry_history)
            keep = self.refresh_keep
        new_state = DiffusionState(
            t=state.t + 1,
            frames=torch.cat([state.frames, frame[:, None]], dim=1)[:, -keep:],
            x=torch.cat([hist, new[:, None]], dim=1)[:, -keep:],
            cond=torch.cat([hist_cond, cond[:, None]], dim=1)[:, -keep:],
            kv=kv,
            anchor_offset=offset,
        )
        return StepOutput(frame, heads.get("reward"), new_state, heads.get("done"))

    def _sample_next(
        self,
        hist: Tensor,
        hist_cond: Tensor,
        cond: Tensor,
        null: Tensor,
        kv: Tensor | None,
        extend: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """The frame after ``hist [B, L, c, h, w]`` (conditions ``hist_cond [B, L, D]``, the new
        frame's ``cond [B, D]``) → ``(new frame [B, c, h, w], carried cache or None)``.
        ``extend=False``: the carried cache is not extended with the new frame (returns None)."""
        if self.carry_history:
            return self._step_carried(hist, hist_cond, cond, null, kv, extend)
        if self.residual:
            base = self.bases(torch.cat([hist, hist[:, -1:]], dim=1))  # [B, L + 1, c, h, w]
            denoise = _ResidualDenoiser(self.denoiser, base)
            change = self.sampler.sample(denoise, hist - base[:, :-1], hist_cond, cond, null)
            return hist[:, -1] + change, None  # [B, c, h, w]
        return self.sampler.sample(self.denoiser, hist, hist_cond, cond, null), None

    def _head_view(self, x: Tensor) -> Tensor:
        """A generated frame as the heads read it: pixels clamped to [-1, 1], latents as is."""
        return x.clamp(-1, 1) if self._tokenizer is None else x

    @torch.no_grad()
    def sample_frame(
        self, frames: Tensor, actions: Tensor, index: int, latents: Tensor | None = None
    ) -> Tensor:
        """The model's own sample of frame ``index`` of each clip (``frames [B, T, C, H, W]``,
        ``actions [B, T, ...]`` or ``[B, T - 1, ...]``) from its real past: the frames before it
        inside the window, their actions and action ``index - 1``. What ``step`` generates
        one step after ``reset`` on that past, in the model's space (pixels, or the
        tokenizer's latents) → ``[B, c, h, w]``. ``latents``: ``encode(frames)``, when already
        computed. Draws from torch's global random stream."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if not 1 <= index < t:
            raise ValueError(f"index must be in [1, {t - 1}] for clips of {t} frames; got {index}")
        self.action_spec.validate(actions)
        if actions.shape[0] != b or actions.shape[1] < index:
            raise ValueError(
                f"actions must be [B, >= {index}, ...] with B = {b} to sample frame {index}; "
                f"got {tuple(actions.shape)}"
            )
        x = self._encoded(frames, latents)  # [B, T, c, h, w]
        start = max(0, index - (self.context_window - 1))
        hist = x[:, start:index]
        hist_cond = self.frame_conditions(actions, index, b)[:, start:]  # [B, L, D]
        cond = self.action_embed(actions[:, index - 1])  # [B, D]
        null = self.action_embed.null_like((b,))
        return self._sample_next(hist, hist_cond, cond, null, None, extend=False)[0]

    def generated_head_losses(
        self,
        frames: Tensor,
        actions: Tensor,
        rewards: Tensor | None = None,
        dones: Tensor | None = None,
        latents: Tensor | None = None,
        index: int | None = None,
    ) -> dict[str, Tensor]:
        """The heads' losses on frames the model generated: for each clip, frame ``index``
        (random in ``[1, T - 1]`` when ``None``) is sampled from its real past
        (:meth:`sample_frame`, no gradient), and the heads read
        ``(real frame index - 1, action index - 1, generated frame index)`` against the real
        ``rewards`` / ``dones [B, T]`` at ``index - 1``. Returns ``reward_mse`` / ``done_bce``
        for the heads the model has and the targets given.

        :meth:`reward_loss` trains on real next frames only, but ``step`` feeds the heads the
        generated frame, which the network renders differently (blurred, an event drawn
        elsewhere or not at all). Trained on both, the heads learn what survives generation,
        and lean on the previous frame and the action where the new frame does not show the
        event."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if t < 2:
            raise ValueError(f"generated_head_losses needs clips of >= 2 frames; got {t}")
        if index is None:
            index = int(torch.randint(1, t, ()))
        x = self._encoded(frames, latents)
        given = {"rewards": rewards, "dones": dones}
        heads = [
            (key, head, given[key])
            for key in HEAD_LOSSES
            if (head := self.heads and self.heads.head(key)) is not None and given[key] is not None
        ]
        if not heads:
            return {}
        for key, _, targets in heads:
            TransitionHeads.check_targets(targets, b, t, key)
        new = self._head_view(self.sample_frame(frames, actions, index, x))
        return {
            HEAD_LOSSES[key]: TransitionHeads.loss(
                key, head(x[:, index - 1], new, actions[:, index - 1]), targets[:, index - 1]
            )
            for key, head, targets in heads
        }

    def _step_carried(
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
        b, length = hist.shape[:2]
        clean = torch.zeros(b, length, device=hist.device)
        base = self.bases(torch.cat([hist, hist[:, -1:]], dim=1)) if self.residual else None
        history = hist - base[:, :-1] if base is not None else hist
        if kv is None:
            kv = self.denoiser.history_kv(history, clean, hist_cond, base)
        denoiser = self.denoiser.denoise_next(kv, None if base is None else base[:, -1:])
        denoise = _PreparedHistory(denoiser)
        out = self.sampler.sample(denoise, history, hist_cond, cond, null)
        new = hist[:, -1] + out if base is not None else out  # [B, c, h, w]
        if length + 1 >= self.context_window or not extend:
            return new, None
        entry = (out if base is not None else new)[:, None]  # as the history holds it
        entry_base = hist[:, -1:] if base is not None else None
        kv = self.denoiser.append_kv(entry, clean[:, :1], cond[:, None], kv, entry_base)
        return new, kv


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
    """``residual=True``: the denoiser of frame changes relative to ``base`` ``[B, L + 1, ...]``
    (the clean previous frames; guidance repeats the batch), with the history cache of
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
