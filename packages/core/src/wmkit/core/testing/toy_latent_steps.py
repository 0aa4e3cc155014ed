"""Tiny reference models of temporally compressed latents (:mod:`wmkit.core.latent_steps`).

:class:`ToyVideoTokenizer` is a weight-free causal tokenizer whose first latent holds frame 0
and each later latent ``k`` frames, the layout of VidTok and the Wan VAE; and
:class:`ToyLatentStepWorldModel` a world model generating ``k`` frames per latent step through
the shared buffering of ``step``. Other packages' tests (play, eval, the world models) use them
to exercise ``k``-frame latent steps without a sibling package.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.action_spec import ActionSpec
from wmkit.core.latent_steps import (
    BufferedState,
    LatentStep,
    buffered_rollout,
    buffered_step,
    num_latent_steps,
    start_buffered,
    trim_context,
)
from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents, Rollout, StepOutput, WorldState
from wmkit.core.testing.toys import ToyTokenizer, ToyWorldModel
from wmkit.core.video import check_video
from wmkit.core.world_model import check_world_model_inputs

__all__ = ["ToyLatentStepWorldModel", "ToyVideoTokenizer"]


class ToyVideoTokenizer(nn.Module, PretrainedMixin):
    """Weight-free causal tokenizer with temporal compression ``k``: latent ``j >= 1`` stacks
    the patch-pooled frames ``(j-1)·k + 1 … j·k`` along channels and latent 0 is frame 0
    repeated ``k`` times (VidTok pads the first frame so), each then pooled and quantized as
    :class:`~wmkit.core.testing.ToyTokenizer` does (``k·C`` channels: a discrete vocabulary of
    ``levels ** (k·C)`` ids). Exact on piecewise-flat frames aligned to the patch grid.
    ``decode_next`` streams (each latent decodes on its own, so the stream only records that
    the video has started).

    Args:
        frames_per_latent: temporal compression ``k``.
        patch: spatial compression.
        levels: quantization levels per channel (discrete).
        channels: image channels.
        kind: ``"discrete"`` or ``"continuous"``.
    """

    def __init__(
        self,
        frames_per_latent: int = 4,
        patch: int = 4,
        levels: int = 2,
        channels: int = 3,
        kind: Literal["discrete", "continuous"] = "continuous",
    ) -> None:
        super().__init__()
        if frames_per_latent < 1:
            raise ValueError(f"frames_per_latent must be >= 1; got {frames_per_latent}")
        self.k, self.channels = frames_per_latent, channels
        self.frames = ToyTokenizer(patch, levels, channels * frames_per_latent, kind)

    @property
    def kind(self) -> Literal["discrete", "continuous"]:
        return self.frames.kind

    @property
    def vocab_size(self) -> int | None:
        return self.frames.vocab_size

    @property
    def latent_channels(self) -> int | None:
        return self.frames.latent_channels

    @property
    def spatial_compression(self) -> int:
        return self.frames.patch

    @property
    def temporal_compression(self) -> int:
        return self.k

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        n = num_latent_steps(num_frames, self.k, "video")
        return self.frames.tokens_shape(1 + n, height, width)

    def encode(self, video: Tensor) -> Latents:
        check_video(video, channels=self.channels)
        self.tokens_shape(video.shape[1], *video.shape[3:])
        first = video[:, :1].expand(-1, self.k, -1, -1, -1)
        stacked = rearrange(
            torch.cat([first, video[:, 1:]], 1), "b (t k) c h w -> b t (k c) h w", k=self.k
        )
        return self.frames.encode(stacked)

    def _frames(self, latents: Latents | Tensor) -> Tensor:
        x = self.frames.decode(latents)  # [B, T', k·C, H, W]
        return rearrange(x, "b t (k c) h w -> b (t k) c h w", k=self.k)

    def decode(self, latents: Latents | Tensor) -> Tensor:
        return self._frames(latents)[:, self.k - 1 :]

    def decode_next(
        self, latents: Latents | Tensor, stream: Any | None = None
    ) -> tuple[Tensor, Any]:
        """The frames of the next latents (``stream`` ``None``: they start the video) and
        the stream after them."""
        frames = self._frames(latents)
        return (frames[:, self.k - 1 :] if stream is None else frames), True


class ToyLatentStepWorldModel(nn.Module, PretrainedMixin):
    """A :class:`~wmkit.core.testing.ToyWorldModel` generating ``k`` frames per latent step:
    ``step_latent`` applies its transition once per action of the step, and ``step`` /
    ``rollout`` go through :func:`~wmkit.core.latent_steps.buffered_step` /
    :func:`~wmkit.core.latent_steps.buffered_rollout` (``k - 1`` frames of latency).

    Args:
        action_spec: the actions it takes.
        frames_per_step: ``k``.
        channels: image channels.
        hidden: width of the transition's CNN.
    """

    def __init__(
        self, action_spec: ActionSpec, frames_per_step: int = 4, channels: int = 3, hidden: int = 16
    ) -> None:
        super().__init__()
        if frames_per_step < 1:
            raise ValueError(f"frames_per_step must be >= 1; got {frames_per_step}")
        self.k = frames_per_step
        self.transition = ToyWorldModel(action_spec, channels, hidden)

    @property
    def action_spec(self) -> ActionSpec:
        return self.transition.action_spec

    @property
    def frames_per_step(self) -> int:
        return self.k

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> BufferedState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        frames, _ = trim_context(context_frames, context_actions, self.k)
        inner = WorldState(t=frames.shape[1], frames=frames[:, -1:])
        return start_buffered(inner, frames)

    @torch.no_grad()
    def step_latent(self, state: WorldState, actions: Tensor) -> LatentStep:
        frame, frames, rewards = state.frames[:, -1], [], []
        for i in range(actions.shape[1]):
            frame, reward = self.transition.predict(frame, actions[:, i])
            frames.append(frame)
            rewards.append(reward)
        new = WorldState(t=state.t + actions.shape[1], frames=frame[:, None])
        return LatentStep(torch.stack(frames, 1), new, rewards=torch.stack(rewards, 1))

    @torch.no_grad()
    def step(self, state: BufferedState, action: Tensor) -> StepOutput:
        return buffered_step(self, state, action)

    @torch.no_grad()
    def rollout(
        self, context_frames: Tensor, actions: Tensor, context_actions: Tensor | None = None
    ) -> Rollout:
        check_world_model_inputs(self.action_spec, context_frames, actions, context_actions)
        return buffered_rollout(self, self.reset(context_frames, context_actions), actions)
