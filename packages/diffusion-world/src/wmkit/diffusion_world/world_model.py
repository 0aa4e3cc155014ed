"""``DiffusionWorldModel``: Diffusion Forcing training and causal, action-guided rollouts.

One class serves both networks of the package: the native
:class:`~wmkit.diffusion_world.dit.SpatioTemporalDiT` and a causalized diffusers
``UNetSpatioTemporalConditionModel`` (:func:`~wmkit.diffusion_world.causalize.causalize`,
optionally from pretrained weights on a local path). It works on pixels by default, or on
the continuous latents of any ``wmkit.core.Tokenizer`` (loaded frozen from a local path, or
attached with :meth:`DiffusionWorldModel.set_tokenizer`).

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import (
    ActionSpec,
    PretrainedMixin,
    StepOutput,
    StepwiseRolloutMixin,
    Tokenizer,
    WorldState,
    check_video,
    check_world_model_inputs,
    load_pretrained,
)
from wmkit.diffusion_world.action_embedding import ActionEmbedding
from wmkit.diffusion_world.causal_layers import TemporalConvRule
from wmkit.diffusion_world.causalize import SVD_UNET_SIZES, causalize, load_diffusers_unet
from wmkit.diffusion_world.dit import DIT_SIZES, SpatioTemporalDiT
from wmkit.diffusion_world.sampler import NextFrameSampler
from wmkit.diffusion_world.schedulers import (
    PredictionType,
    SamplerName,
    add_frame_noise,
    frame_target,
    make_training_scheduler,
)

__all__ = ["DiffusionLoss", "DiffusionWorldModel"]


@dataclass
class DiffusionLoss:
    """``loss`` (scalar), the per-frame noise levels used and scalars to log."""

    loss: Tensor
    timesteps: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


class DiffusionWorldModel(nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """Causal, action-conditioned video diffusion world model.

    Args:
        action_spec: the actions it takes.
        network: ``"dit"`` (native spatio-temporal DiT) or ``"svd_unet"`` (causalized
            diffusers ``UNetSpatioTemporalConditionModel``).
        size: named size of the network (``DIT_SIZES`` / ``SVD_UNET_SIZES``).
        network_kwargs: overrides of the size's arguments (DiT ``__init__`` arguments or
            the diffusers UNet config).
        pretrained_network: ``svd_unet`` only: local diffusers directory of a pretrained
            UNet, loaded then causalized (its config replaces ``size``/``network_kwargs``).
        temporal_conv: ``svd_unet`` only: temporal-conv weight transfer (``shift``,
            ``masked``, ``extrapolative``).
        channels: channels the network sees (3 for pixels; the latent channels).
        image_size: height and width the network sees (pixels or latents).
        tokenizer: local path of a saved continuous wmkit tokenizer (frozen); ``None``
            works on pixels (or on a tokenizer attached with ``set_tokenizer``).
        latent_scale: latents are multiplied by this before diffusion.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        num_train_timesteps: diffusion steps of the training schedule.
        beta_schedule: diffusers beta schedule name.
        action_dropout: per-frame probability of dropping the action in training.
        sampler: ``"ddpm"``, ``"ddim"``, ``"euler"`` or ``"dpm"``.
        num_sampling_steps: denoising steps per generated frame.
        guidance_scale: causal action guidance scale (1: none; 0: unconditional).
        history_noise_level: timestep the history is noised to while sampling.
        context_window: frames the network sees at once while sampling (history + new).
    """

    def __init__(
        self,
        action_spec: ActionSpec,
        network: Literal["dit", "svd_unet"] = "dit",
        size: str = "tiny",
        network_kwargs: dict[str, Any] | None = None,
        pretrained_network: str | None = None,
        temporal_conv: TemporalConvRule = "extrapolative",
        channels: int = 3,
        image_size: int = 16,
        tokenizer: str | None = None,
        latent_scale: float = 1.0,
        prediction_type: PredictionType = "v_prediction",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        action_dropout: float = 0.1,
        sampler: SamplerName = "ddim",
        num_sampling_steps: int = 4,
        guidance_scale: float = 1.0,
        history_noise_level: int = 0,
        context_window: int = 8,
    ) -> None:
        super().__init__()
        if isinstance(action_spec, dict):
            action_spec = ActionSpec.from_dict(action_spec)
        if not 0.0 <= action_dropout <= 1.0:
            raise ValueError(f"action_dropout must be in [0, 1]; got {action_dropout}")
        if context_window < 2:
            raise ValueError(f"context_window must be >= 2; got {context_window}")
        self._action_spec = action_spec
        self.channels, self.image_size = channels, image_size
        self.latent_scale = latent_scale
        self.action_dropout = action_dropout
        self.context_window = context_window
        self.network = self._build_network(
            network, size, network_kwargs, pretrained_network, temporal_conv
        )
        self.action_embed = ActionEmbedding(action_spec, self.network.cond_dim)
        self._tokenizer: Tokenizer | None = None
        if tokenizer is not None:
            self.set_tokenizer(load_pretrained(tokenizer))
        self.train_scheduler = make_training_scheduler(
            num_train_timesteps, beta_schedule, prediction_type, clip_sample=tokenizer is None
        )
        self.sampler = NextFrameSampler(
            self.train_scheduler, sampler, num_sampling_steps, guidance_scale, history_noise_level
        )

    def _build_network(
        self,
        network: str,
        size: str,
        kwargs: dict[str, Any] | None,
        pretrained: str | None,
        temporal_conv: TemporalConvRule,
    ) -> nn.Module:
        if network == "dit":
            if size not in DIT_SIZES:
                raise ValueError(f"size must be one of {tuple(DIT_SIZES)} for dit; got {size!r}")
            if pretrained is not None:
                raise ValueError("pretrained_network is for network='svd_unet' only")
            args = {**DIT_SIZES[size], "patch_size": 2, **(kwargs or {})}
            return SpatioTemporalDiT(in_channels=self.channels, image_size=self.image_size, **args)
        if network == "svd_unet":
            from diffusers import UNetSpatioTemporalConditionModel

            if pretrained is not None:
                unet = load_diffusers_unet(pretrained)
            else:
                if size not in SVD_UNET_SIZES:
                    raise ValueError(
                        f"size must be one of {tuple(SVD_UNET_SIZES)} for svd_unet; got {size!r}"
                    )
                config = {
                    **SVD_UNET_SIZES[size],
                    "in_channels": self.channels,
                    "out_channels": self.channels,
                    **(kwargs or {}),
                }
                unet = UNetSpatioTemporalConditionModel(**config)
            if unet.config.out_channels != self.channels:
                raise ValueError(
                    f"the UNet predicts {unet.config.out_channels} channels but channels="
                    f"{self.channels}"
                )
            return causalize(unet, temporal_conv)
        raise ValueError(f"network must be 'dit' or 'svd_unet'; got {network!r}")

    # ------------------------------------------------------------------ tokenizer / spaces
    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Tokenizer | None) -> DiffusionWorldModel:
        """Work on ``tokenizer``'s latents (frozen, not saved with the model). Returns self."""
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
        # not registered as a submodule: the tokenizer is frozen and saved on its own
        object.__setattr__(self, "_tokenizer", tokenizer)
        return self

    def encode(self, video: Tensor) -> Tensor:
        """Video ``[B, T, C, H, W]`` in [-1, 1] → what the network sees ``[B, T, c, h, w]``."""
        check_video(video, "video")
        if self._tokenizer is None:
            x = video
        else:
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
        if self._tokenizer is None:
            return x.clamp(-1, 1)
        with torch.no_grad():
            return self._tokenizer.decode(x / self.latent_scale).clamp(-1, 1)

    # ------------------------------------------------------------------ conditioning
    def frame_conditions(self, actions: Tensor | None, num_frames: int, batch: int) -> Tensor:
        """Per-frame conditions ``[B, T, D]``: frame ``i`` gets action ``i - 1``; frame 0 and
        frames without a known action get the "no action" vector."""
        null = self.action_embed.null_like((batch, 1))
        if actions is None or num_frames == 1:
            return null.expand(batch, num_frames, -1)
        emb = self.action_embed(actions[:, : num_frames - 1])  # [B, T - 1, D]
        return torch.cat([null, emb], dim=1)

    def forward(self, x: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        """The denoiser: ``x [B, T, c, h, w]``, ``timesteps [B, T]``, ``cond [B, T, D]``."""
        return self.network(x, timesteps, cond)

    # ------------------------------------------------------------------ training
    def loss(self, frames: Tensor, actions: Tensor | None = None) -> DiffusionLoss:
        """Diffusion Forcing loss on a clip ``frames [B, T, C, H, W]``, ``actions [B, T, ...]``
        (action ``t`` follows frame ``t``; the last one is unused)."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if actions is not None:
            self.action_spec.validate(actions)
            if actions.shape[:2] != (b, t) and actions.shape[:2] != (b, t - 1):
                raise ValueError(
                    f"actions must be [B, T, ...] or [B, T - 1, ...] for frames [B, T] = "
                    f"{(b, t)}; got {tuple(actions.shape)}"
                )
        x = self.encode(frames)  # [B, T, c, h, w]
        n = self.train_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, n, (b, t), device=x.device)
        noise = torch.randn_like(x)
        noisy = add_frame_noise(self.train_scheduler, x, noise, timesteps)
        cond = self.frame_conditions(actions, t, b)  # [B, T, D]
        if self.training and self.action_dropout > 0:
            keep = torch.rand(b, t, device=x.device) >= self.action_dropout
            cond = torch.where(keep[..., None], cond, self.action_embed.null_like((b, t)))
        pred = self.network(noisy, timesteps, cond)
        target = frame_target(self.train_scheduler, x, noise, timesteps)
        per_frame = F.mse_loss(pred.float(), target.float(), reduction="none").mean((2, 3, 4))
        return DiffusionLoss(
            loss=per_frame.mean(),
            timesteps=timesteps,
            logs={
                "mse_first_frame": per_frame[:, 0].mean(),
                "mse_last_frame": per_frame[:, -1].mean(),
            },
        )

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.network.set_gradient_checkpointing(enabled)

    # ------------------------------------------------------------------ WorldModel protocol
    @torch.no_grad()
    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        b, t0 = context_frames.shape[:2]
        keep = self.context_window - 1
        x = self.encode(context_frames)  # [B, T0, c, h, w]
        with torch.no_grad():
            cond = self.frame_conditions(context_actions, t0, b)  # [B, T0, D]
        return WorldState(
            t=t0,
            frames=context_frames[:, -keep:],
            extra={"x": x[:, -keep:], "cond": cond[:, -keep:]},
        )

    @torch.no_grad()
    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        hist, hist_cond = state.extra["x"], state.extra["cond"]
        if action.shape[0] != hist.shape[0]:
            raise ValueError(
                f"action has batch size {action.shape[0]} but the state has {hist.shape[0]}"
            )
        cond = self.action_embed(action)  # [B, D]
        null = self.action_embed.null_like((action.shape[0],))
        new = self.sampler.sample(self, hist, hist_cond, cond, null)  # [B, c, h, w]
        frame = self.decode(new[:, None])[:, 0]  # [B, C, H, W]
        keep = self.context_window - 1
        x = torch.cat([hist, new[:, None]], dim=1)[:, -keep:]
        conds = torch.cat([hist_cond, cond[:, None]], dim=1)[:, -keep:]
        frames = torch.cat([state.frames, frame[:, None]], dim=1)[:, -keep:]
        new_state = WorldState(t=state.t + 1, frames=frames, extra={"x": x, "cond": conds})
        return StepOutput(frame=frame, reward=None, state=new_state)
