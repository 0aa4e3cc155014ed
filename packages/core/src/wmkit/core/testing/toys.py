"""Small, honest reference implementations of the core protocols.

They are real models (they train and behave as the contract says) kept tiny, so that core's
tests can exercise the conformance suite and the stage machinery, and other packages' tests
(eval, play, agents) have a ``WorldModel``/``Tokenizer`` to drive without depending on a
sibling package.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.action_spec import ActionSpec
from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.protocols import Latents
from wmkit.core.video import check_video
from wmkit.core.world_model import MarkovStepMixin

__all__ = ["ToyCompressiveTokenizer", "ToyTokenizer", "ToyWorldModel"]


class ToyWorldModel(nn.Module, PretrainedMixin, MarkovStepMixin):
    """Markov pixel-space world model: next frame = last frame + CNN(last frame, action).

    Deterministic and strictly causal; predicts a reward from the new frame.

    Args:
        action_spec: the actions it takes.
        channels: image channels.
        hidden: width of the CNN.
        kernel_size: CNN kernel size (odd); bigger lets actions move content further.
    """

    def __init__(
        self,
        action_spec: ActionSpec,
        channels: int = 3,
        hidden: int = 32,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        self._action_spec = action_spec
        self.channels = channels
        pad = kernel_size // 2
        self.action_proj = nn.Linear(action_spec.feature_dim, hidden)
        self.inp = nn.Conv2d(channels, hidden, kernel_size, padding=pad)
        self.mid = nn.Conv2d(hidden, hidden, kernel_size, padding=pad)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        self.reward_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    def predict(self, frame: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """One transition: frame ``[B, C, H, W]``, action ``[B, ...]`` → (next frame, reward)."""
        a = self.action_proj(self.action_spec.features(action))  # [B, D]
        h = F.silu(self.inp(frame) + a[:, :, None, None])  # [B, D, H, W]
        h = F.silu(self.mid(h))
        nxt = (frame + self.out(h)).clamp(-1, 1)  # [B, C, H, W]
        reward = self.reward_head(h.mean(dim=(2, 3))).squeeze(-1)  # [B]
        return nxt, reward

    def forward(self, frames: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced: frames ``[B, T, C, H, W]``, actions ``[B, T, ...]`` → predicted
        frames ``t + 1`` and rewards for every ``t`` (``[B, T, C, H, W]``, ``[B, T]``)."""
        b = frames.shape[0]
        x = rearrange(frames, "b t c h w -> (b t) c h w")
        a = actions.reshape(-1, *self.action_spec.action_shape)
        nxt, reward = self.predict(x, a)
        return rearrange(nxt, "(b t) c h w -> b t c h w", b=b), reward.reshape(b, -1)

    def transition(self, frame: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """``predict``: the ``MarkovStepMixin`` step."""
        return self.predict(frame, action)


class ToyTokenizer(nn.Module, PretrainedMixin):
    """Per-frame tokenizer with no learned weights: average-pool by ``patch``, then either
    quantize each channel to ``levels`` values (discrete; id = mixed-radix digits) or keep the
    pooled values (continuous). Causal (each frame on its own), exact on piecewise-flat
    images such as moving squares aligned to the patch grid.

    Args:
        patch: spatial compression factor.
        levels: quantization levels per channel (discrete).
        channels: image channels.
        kind: ``"discrete"`` or ``"continuous"``.
    """

    def __init__(
        self,
        patch: int = 4,
        levels: int = 4,
        channels: int = 3,
        kind: Literal["discrete", "continuous"] = "discrete",
    ) -> None:
        super().__init__()
        if kind not in ("discrete", "continuous"):
            raise ValueError(f"kind must be 'discrete' or 'continuous'; got {kind!r}")
        self.patch, self.levels, self.channels, self._kind = patch, levels, channels, kind
        self.register_buffer("radix", levels ** torch.arange(channels), persistent=False)

    @property
    def kind(self) -> Literal["discrete", "continuous"]:
        return self._kind

    @property
    def vocab_size(self) -> int | None:
        return self.levels**self.channels if self._kind == "discrete" else None

    @property
    def latent_channels(self) -> int | None:
        return self.channels if self._kind == "continuous" else None

    @property
    def spatial_compression(self) -> int:
        return self.patch

    @property
    def temporal_compression(self) -> int:
        return 1

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        if height % self.patch or width % self.patch:
            raise ValueError(
                f"height and width must be multiples of {self.patch}; got {height}x{width}"
            )
        hw = (height // self.patch, width // self.patch)
        return (num_frames, *hw) if self._kind == "discrete" else (num_frames, self.channels, *hw)

    def encode(self, video: Tensor) -> Latents:
        check_video(video, channels=self.channels)
        b = video.shape[0]
        self.tokens_shape(*video.shape[1:2], *video.shape[3:])
        x = F.avg_pool2d(rearrange(video, "b t c h w -> (b t) c h w"), self.patch)
        x = rearrange(x, "(b t) c h w -> b t c h w", b=b)
        if self._kind == "continuous":
            return Latents(values=x, kind="continuous")
        q = ((x + 1) / 2 * self.levels).floor().clamp(0, self.levels - 1).long()
        ids = (q * self.radix.view(1, 1, -1, 1, 1)).sum(dim=2)  # [B, T, h, w]
        return Latents(values=ids, kind="discrete")

    def decode(self, latents: Latents | Tensor) -> Tensor:
        values = latents.values if isinstance(latents, Latents) else latents
        if self._kind == "discrete":
            if values.ndim != 4 or values.is_floating_point():
                raise ValueError(
                    f"tokens must be long [B, T, h, w]; got {values.dtype}{tuple(values.shape)}"
                )
            digits = (values.unsqueeze(2) // self.radix.view(1, 1, -1, 1, 1)) % self.levels
            x = (digits.float() + 0.5) / self.levels * 2 - 1  # [B, T, C, h, w]
        else:
            if values.ndim != 5:
                raise ValueError(f"latents must be [B, T, C, h, w]; got {tuple(values.shape)}")
            x = values
        b = x.shape[0]
        x = F.interpolate(rearrange(x, "b t c h w -> (b t) c h w"), scale_factor=self.patch)
        return rearrange(x, "(b t) c h w -> b t c h w", b=b).clamp(-1, 1)


class ToyCompressiveTokenizer(nn.Module, PretrainedMixin):
    """Weight-free *compressive* tokenizer (iVideoGPT's layout, for tests): context frames get
    fine tokens (a :class:`ToyTokenizer` with ``patch``), future frames coarse ones (a
    ``ToyTokenizer`` with ``patch · future_patch``). A future frame decodes to the latest
    context frame (``Latents.context_frames`` when given, else the context tokens' decoding)
    wherever its coarse tokens equal that frame's, and to the coarse decoding elsewhere: exact
    on unchanged regions, like a residual compressive tokenizer.

    Args:
        patch: context spatial compression.
        future_patch: extra compression of future frames.
        levels: quantization levels per channel (both codebooks).
        channels: image channels.
        context_frames: default ``T0`` of ``encode(video)`` (``None``: every frame).
    """

    def __init__(
        self,
        patch: int = 4,
        future_patch: int = 2,
        levels: int = 2,
        channels: int = 3,
        context_frames: int | None = None,
    ) -> None:
        super().__init__()
        self.fine = ToyTokenizer(patch, levels, channels)
        self.coarse = ToyTokenizer(patch * future_patch, levels, channels)
        self.default_context_frames = context_frames

    kind = "discrete"
    latent_channels = None
    temporal_compression = 1

    @property
    def vocab_size(self) -> int:
        return self.fine.vocab_size  # type: ignore[return-value]

    @property
    def future_vocab_size(self) -> int:
        return self.coarse.vocab_size  # type: ignore[return-value]

    @property
    def spatial_compression(self) -> int:
        return self.fine.patch

    def _t0(self, num_frames: int, context_frames: int | None) -> int:
        t0 = self.default_context_frames if context_frames is None else context_frames
        return num_frames if t0 is None else min(t0, num_frames)

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        self.coarse.tokens_shape(1, height, width)
        return self.fine.tokens_shape(self._t0(num_frames, None), height, width)

    def future_tokens_shape(
        self, num_frames: int, height: int, width: int, context_frames: int | None = None
    ) -> tuple[int, ...]:
        t0 = self._t0(num_frames, context_frames)
        return self.coarse.tokens_shape(num_frames - t0, height, width)

    def encode(self, video: Tensor, context_frames: int | None = None) -> Latents:
        check_video(video, channels=self.fine.channels)
        t0 = self._t0(video.shape[1], context_frames)
        return Latents(
            values=self.fine.encode(video[:, :t0]).values,
            kind="discrete",
            future=self.coarse.encode(video[:, t0:]).values,
            context_indices=tuple(range(t0)),
            context_frames=video[:, :t0],
        )

    def decode(self, latents: Latents | Tensor) -> Tensor:
        values = latents.values if isinstance(latents, Latents) else latents
        context = self.fine.decode(values)
        future = latents.future if isinstance(latents, Latents) else None
        if future is None or future.shape[1] == 0:
            return context
        given = latents.context_frames if isinstance(latents, Latents) else None
        anchor = (context if given is None else given)[:, -1:]  # [B, 1, C, H, W]
        same = self.coarse.encode(anchor).values == future  # [B, Tf, h', w']
        p = self.coarse.patch
        mask = same.repeat_interleave(p, -2).repeat_interleave(p, -1).unsqueeze(2)
        return torch.cat([context, torch.where(mask, anchor, self.coarse.decode(future))], 1)
