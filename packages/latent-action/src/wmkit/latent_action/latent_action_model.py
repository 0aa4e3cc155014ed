"""`LatentActionAutoencoder`: latent actions from action-free video (IGOR, LAPA, Genie).

An inverse-dynamics encoder looks at frame ``t`` (and, in the window variant, up to
``window - 1`` frames before it) and frame ``t + 1``, and squeezes what changed into a
latent action through a tight bottleneck (:class:`~wmkit.latent_action.quantizer
.ActionBottleneck`: FSQ by default, VQ with dead-code reset, or continuous). A forward
decoder reconstructs frame ``t + 1`` from frame ``t`` and the latent action only, so the
latent must carry the change; the bottleneck keeps it from carrying the whole next frame.

Where we differ from the papers, and why:

- Networks are small CNNs (a strided encoder and a U-Net-shaped decoder that predicts a
  residual over frame ``t``), not LAPA's/IGOR's spatio-temporal ViTs or Genie's ST-transformer:
  our frames are 16–64 px and training runs on a CPU in minutes.
- The encoder sees the frame difference ``x_{t+1} - x_t`` as extra channels, instead of
  LAPA's difference of transformer features (``last_tokens - first_tokens`` before NSVQ):
  the same inductive bias (encode the change), at the pixel level.
- The decoder is Markov (frame ``t`` only), so ``apply(frame, latent)`` needs no history; Genie's
  decoder attends to all past frames. The encoder's window is strictly causal (latent ``t``
  depends on frames ``<= t + 1``), padding the start by repeating frame 0.
- FSQ instead of NSVQ by default (see ``quantizer.py`` for collapse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core import ActionSpec, PretrainedMixin, check_video
from wmkit.latent_action.quantizer import ActionBottleneck, QuantizerKind

__all__ = ["SIZES", "LatentActionAutoencoder", "LatentActionOutput"]

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden": 8, "token_dim": 8, "depth": 2},
    "small": {"hidden": 32, "token_dim": 16, "depth": 3},
    "base": {"hidden": 64, "token_dim": 32, "depth": 3},
}
"""Named sizes (DiT-style registry); ``LatentActionAutoencoder.from_size("small", ...)``."""


@dataclass
class LatentActionOutput:
    """``forward`` result for frames ``[B, T, C, H, W]``.

    Attributes:
        predicted: the decoder's frames ``t + 1`` ``[B, T - 1, C, H, W]``.
        latent_actions: ``[B, T - 1, *latent_action_spec.action_shape]``.
        features: the quantized token features fed to the decoder ``[B, T - 1, K, D]``.
        aux_loss: the bottleneck's auxiliary loss (VQ commitment), a scalar.
    """

    predicted: Tensor
    latent_actions: Tensor
    features: Tensor
    aux_loss: Tensor


class _Encoder(nn.Module):
    """Inverse dynamics: ``[N, (W + 2) C, H, W]`` (window, next frame, difference) →
    token features ``[N, K, D]``."""

    def __init__(self, in_channels: int, hidden: int, depth: int, tokens: int, dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.SiLU()]
        width = hidden
        for i in range(depth):
            out = hidden * min(2 ** (i + 1), 4)
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.SiLU()]
            width = out
        layers.append(nn.AdaptiveAvgPool2d(4))
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(width * 16, tokens * dim)
        self.tokens, self.dim = tokens, dim

    def forward(self, x: Tensor) -> Tensor:
        h = self.net(x).flatten(1)  # [N, width * 16]
        return rearrange(self.head(h), "n (k d) -> n k d", k=self.tokens)  # [N, K, D]


class _Decoder(nn.Module):
    """Forward model: frame ``[N, C, H, W]`` + latent ``[N, K·D]`` → next frame (residual)."""

    def __init__(self, channels: int, hidden: int, depth: int, latent_dim: int) -> None:
        super().__init__()
        widths = [hidden * min(2**i, 4) for i in range(depth + 1)]  # per resolution level
        self.inp = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1) for i in range(depth)
        )
        self.mid = nn.Conv2d(widths[-1], widths[-1], 3, padding=1)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1)
            for i in reversed(range(depth))
        )
        self.cond = nn.ModuleList(nn.Linear(latent_dim, w) for w in [*widths, widths[-1]])
        self.out = nn.Conv2d(widths[0], channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frame: Tensor, latent: Tensor) -> Tensor:
        cond = [c(latent)[:, :, None, None] for c in self.cond]
        h = F.silu(self.inp(frame)) + cond[0]  # [N, h, H, W]
        skips = [h]
        for i, down in enumerate(self.down):
            h = F.silu(down(h)) + cond[i + 1]  # [N, w_i, H / 2^i, W / 2^i]
            skips.append(h)
        h = F.silu(self.mid(h)) + cond[-1]
        skips.pop()
        for up in self.up:
            h = F.silu(up(h)) + skips.pop()
        return (frame + self.out(h)).clamp(-1, 1)  # [N, C, H, W]


class LatentActionAutoencoder(nn.Module, PretrainedMixin):
    """Inverse-dynamics encoder + bottleneck + forward decoder; a ``wmkit.core.LatentActionModel``.

    Args:
        channels: image channels.
        hidden: base width of the CNNs.
        depth: stride-2 levels of encoder and decoder; frame sizes must divide ``2**depth``.
        num_tokens: tokens per latent action (LAPA: 4).
        token_dim: features per token before quantization.
        quantizer: ``"fsq"`` (default), ``"vq"`` or ``"none"`` (continuous latent actions).
        codebook_size: codes per token for VQ (LAPA: 8).
        fsq_levels: FSQ levels per scalar (``(8,)``: 8 codes per token).
        window: frames up to ``t`` the encoder sees (1: the pair ``(t, t + 1)``); causal.
        vq_dead_code_threshold: EMA usage below which a VQ code is reset.
        blind: ablation: the encoder never sees frame ``t + 1`` (it gets frame ``t`` in its
            place), so the latent cannot carry the action. A control for probes, not for use.
    """

    def __init__(
        self,
        channels: int = 3,
        hidden: int = 32,
        depth: int = 3,
        num_tokens: int = 4,
        token_dim: int = 16,
        quantizer: QuantizerKind = "fsq",
        codebook_size: int = 8,
        fsq_levels: tuple[int, ...] = (8,),
        window: int = 1,
        vq_dead_code_threshold: float = 1.0,
        blind: bool = False,
    ) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1; got {window}")
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1; got {depth}, {hidden}")
        self.channels, self.depth, self.window, self.blind = channels, depth, window, blind
        self.bottleneck = ActionBottleneck(
            quantizer,
            num_tokens,
            token_dim,
            codebook_size=codebook_size,
            fsq_levels=tuple(fsq_levels),
            vq_dead_code_threshold=vq_dead_code_threshold,
        )
        self.encoder = _Encoder((window + 2) * channels, hidden, depth, num_tokens, token_dim)
        self.decoder = _Decoder(channels, hidden, depth, num_tokens * token_dim)
        self._spec = self.bottleneck.spec

    @classmethod
    def from_size(cls, size: str, **kwargs: Any) -> LatentActionAutoencoder:
        """Build a named size from ``SIZES`` (``"tiny"``, ``"small"``, ``"base"``)."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
        return cls(**{**SIZES[size], **kwargs})

    @property
    def latent_action_spec(self) -> ActionSpec:
        """``multi_discrete([codes] * num_tokens)``, or ``continuous((K, D), -1, 1)``."""
        return self._spec

    # ------------------------------------------------------------------------------ checks
    def _check_frames(self, frames: Tensor, name: str = "frames", min_frames: int = 2) -> None:
        check_video(frames, name, channels=self.channels)
        if frames.shape[1] < min_frames:
            raise ValueError(
                f"{name} needs at least {min_frames} frames (T) to have a transition; "
                f"got shape {tuple(frames.shape)}"
            )
        h, w = frames.shape[-2:]
        unit = 2**self.depth
        if h % unit or w % unit:
            raise ValueError(
                f"{name} height and width must be multiples of 2**depth = {unit}; got {h}x{w}"
            )

    # ------------------------------------------------------------------------------ parts
    def _windows(self, frames: Tensor) -> Tensor:
        """``[B, T, C, H, W]`` → encoder input ``[B, T - 1, (W + 2) C, H, W]``, causal."""
        t = frames.shape[1]
        steps = torch.arange(t - 1, device=frames.device)
        offsets = torch.arange(-self.window + 1, 1, device=frames.device)
        idx = (steps[:, None] + offsets[None, :]).clamp_min(0)  # [T - 1, W]
        past = frames[:, idx]  # [B, T - 1, W, C, H, W]
        current = frames[:, :-1]  # [B, T - 1, C, H, W]
        nxt = current if self.blind else frames[:, 1:]
        past = rearrange(past, "b t w c h x -> b t (w c) h x")
        return torch.cat([past, nxt, nxt - current], dim=2)

    def encode(self, frames: Tensor) -> Tensor:
        """Unquantized token features ``[B, T - 1, K, D]`` of every transition."""
        b = frames.shape[0]
        x = rearrange(self._windows(frames), "b t c h w -> (b t) c h w")
        z = self.encoder(x)  # [B (T - 1), K, D]
        return rearrange(z, "(b t) k d -> b t k d", b=b)

    def decode(self, frame: Tensor, features: Tensor) -> Tensor:
        """Frame ``[N, C, H, W]`` + quantized features ``[N, K, D]`` → next frame."""
        return self.decoder(frame, features.flatten(1))

    def forward(self, frames: Tensor) -> LatentActionOutput:
        """Frames ``[B, T, C, H, W]`` → every transition's latent action and predicted frame."""
        self._check_frames(frames)
        b = frames.shape[0]
        z = self.encode(frames)  # [B, T - 1, K, D]
        q = self.bottleneck(rearrange(z, "b t k d -> (b t) k d"))
        current = rearrange(frames[:, :-1], "b t c h w -> (b t) c h w")
        pred = self.decode(current, q.values)  # [B (T - 1), C, H, W]
        return LatentActionOutput(
            predicted=rearrange(pred, "(b t) c h w -> b t c h w", b=b),
            latent_actions=q.actions.reshape(b, -1, *self._spec.action_shape),
            features=rearrange(q.values, "(b t) k d -> b t k d", b=b),
            aux_loss=q.loss,
        )

    # ------------------------------------------------------------------- LatentActionModel
    @torch.no_grad()
    def infer(self, frames: Tensor) -> Tensor:
        """Frames ``[B, T, C, H, W]`` → latent actions ``[B, T - 1, *spec.action_shape]``.

        Never updates a VQ codebook (the bottleneck runs in eval mode here).
        """
        self._check_frames(frames)
        b = frames.shape[0]
        z = self.encode(frames)
        was_training = self.bottleneck.training
        self.bottleneck.eval()
        try:
            q = self.bottleneck(rearrange(z, "b t k d -> (b t) k d"))
        finally:
            self.bottleneck.train(was_training)
        return q.actions.reshape(b, -1, *self._spec.action_shape)

    def apply(self, frame: Tensor, latent_action: Tensor) -> Tensor:
        """Frame ``[B, C, H, W]`` + latent action ``[B, *spec.action_shape]`` → next frame."""
        check_video(frame.unsqueeze(1) if isinstance(frame, Tensor) else frame, "frame")
        if frame.shape[1] != self.channels:
            raise ValueError(
                f"frame must be [B, {self.channels}, H, W]; got shape {tuple(frame.shape)}"
            )
        self._spec.validate(latent_action, name="latent_action", batch_dims=1)
        if latent_action.shape[0] != frame.shape[0]:
            raise ValueError(
                f"latent_action has batch size {latent_action.shape[0]} but frame has "
                f"{frame.shape[0]}"
            )
        features = self.bottleneck.lookup(latent_action)  # [B, K, D]
        return self.decode(frame, features)
