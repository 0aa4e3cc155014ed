"""A learned per-patch choice between a world model's next frame and the last frame shown.

Copy-last-frame is exact wherever nothing moves; a world model returns its tokenizer's and its
sampler's error there, and, where the scene changes by a few pixels, a guess that is often
worse than not changing at all. The mean per-frame PSNR (the measure iVideoGPT and MineWorld
report, capped at 100 dB for identical frames) and SSIM punish both. :class:`ChangeGate` reads
the last frame shown (the *anchor*), the world model's next frame and the action, and gives
two logits: one per ``patch``×``patch`` block ("this block changes") and one per frame
("anything changes"), computed from the mean of the block features. A block is taken from the
model where both are positive; otherwise the anchor's block is kept bit-exactly, so a frame
judged still is the anchor exactly.

It is trained (:func:`gate_loss`) on the world model's own rollouts against the real frames:
the blocks on the mean per-frame ``log10`` MSE of the blend of the two frames (what the
per-frame PSNR measures) plus a weight times the ``log10`` of their mean MSE (what the PSNR
of the mean MSE measures), the frame decision as a classifier of whether the blocks beat the
anchor on that frame. So a block is kept where the model's block is, in expectation, further
from the truth than the anchor's, which covers both "nothing changed" and "the model's change
is wrong", not just a threshold on how much the model changed it (a fixed threshold trades
action following for stillness: ``docs/benchmarks/diffusion-world.md``).

This is not from a paper: frame-difference gates are old in video coding (skip blocks), and
residual world models such as DIAMOND's predict the next frame from the last one, but their
output is never exactly the last frame. The gate is what makes "no change" exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ChangeGate", "gate_loss"]


class ChangeGate(nn.Module):
    """Per-patch logits for "take the world model's block" (> 0) or "keep the anchor's".

    Args:
        action_dim: width of the action features (``ActionSpec.feature_dim``).
        channels: frame channels.
        patch: block size in pixels; frames need sides divisible by it.
        width: feature channels per block.
        depth: 3×3 convolutions over the block grid.
    """

    def __init__(
        self, action_dim: int, channels: int = 3, patch: int = 4, width: int = 48, depth: int = 2
    ) -> None:
        super().__init__()
        if min(action_dim, channels, patch, width, depth) < 1:
            raise ValueError(
                "action_dim, channels, patch, width and depth must be >= 1; got "
                f"{action_dim}, {channels}, {patch}, {width}, {depth}"
            )
        self.channels, self.patch = channels, patch
        # anchor, frame, their difference and its mean absolute value per pixel
        self.embed = nn.Conv2d(3 * channels + 1, width, patch, stride=patch)
        self.action = nn.Linear(action_dim, width)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.frame_wide = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Conv2d(width, 1, 1)  # per block
        self.frame_head = nn.Linear(width, 1)  # per frame: does anything change?

    def forward(self, anchor: Tensor, frame: Tensor, action_features: Tensor) -> Tensor:
        """``anchor``, ``frame`` ``[B, C, H, W]`` in [-1, 1], ``action_features`` ``[B, A]`` →
        logits ``[B, 2, H / patch, W / patch]``: channel 0 per block ("this block changes"),
        channel 1 the frame's ("anything changes"), the same in every block. A block is taken
        from the world model where both are positive."""
        self._check(anchor, frame, action_features)
        diff = frame - anchor
        x = torch.cat([anchor, frame, diff, diff.abs().mean(1, keepdim=True)], dim=1)
        h = F.silu(self.embed(x) + self.action(action_features)[:, :, None, None])
        for conv, wide in zip(self.blocks, self.frame_wide, strict=True):
            h = h + F.silu(conv(h) + wide(h.mean(dim=(2, 3)))[:, :, None, None])
        still = self.frame_head(h.mean(dim=(2, 3)))[:, :, None, None].expand_as(h[:, :1])
        return torch.cat([self.head(h), still], dim=1)

    def expand(self, per_block: Tensor) -> Tensor:
        """``[B, 1, H / patch, W / patch]`` → ``[B, 1, H, W]`` (each block's value on its
        pixels)."""
        return per_block.repeat_interleave(self.patch, -2).repeat_interleave(self.patch, -1)

    def select(self, anchor: Tensor, frame: Tensor, logits: Tensor) -> Tensor:
        """The served frame: the model's block where all ``logits`` (per block and per frame,
        :meth:`forward`) are positive, else the anchor's block, bit-exactly."""
        take = (logits > 0).all(dim=1, keepdim=True)
        return torch.where(self.expand(take), frame, anchor)

    def _check(self, anchor: Tensor, frame: Tensor, action_features: Tensor) -> None:
        if anchor.ndim != 4 or anchor.shape != frame.shape:
            raise ValueError(
                "anchor and frame must both be [B, C, H, W] of one shape; got "
                f"{tuple(anchor.shape)} and {tuple(frame.shape)}"
            )
        b, c, h, w = frame.shape
        if c != self.channels:
            raise ValueError(f"the gate was built for {self.channels} channels; frames have {c}")
        if h % self.patch or w % self.patch:
            raise ValueError(f"frame sides {h}x{w} must be divisible by patch={self.patch}")
        if action_features.shape != (b, self.action.in_features):
            raise ValueError(
                f"action_features must be [B={b}, {self.action.in_features}]; got "
                f"{tuple(action_features.shape)}"
            )


def gate_loss(
    gate: ChangeGate,
    anchor: Tensor,
    frame: Tensor,
    target: Tensor,
    logits: Tensor,
    mse_floor: float = 1e-6,
    block_mse_weight: float = 0.5,
) -> Tensor:
    """The gate's training loss on frames ``[N, C, H, W]`` in [-1, 1] (MSE in [0, 1] pixel
    units) and the logits of :meth:`ChangeGate.forward`:

    - the blocks, relaxed to ``blocks = p · frame + (1 - p) · anchor`` (``p`` the sigmoid of
      the block logits): the mean over frames of ``log10(mse_floor + MSE(blocks))`` (the
      per-frame PSNR up to sign and scale), plus ``block_mse_weight`` times ``log10`` of their
      mean MSE over all frames (the PSNR of the mean MSE, which keeps the world model's blocks
      where they beat the last frame's on frames that change much);
    - the frame's decision, as a classifier: binary cross-entropy towards "take the blocks"
      where ``blocks`` has the lower per-frame log MSE than the anchor, weighted by the gap.
      A relaxed frame decision trained through the blend saturates at "keep everything" (its
      gradient vanishes there); the classifier's does not.

    ``mse_floor`` (1e-6: 60 dB) bounds what one exact frame is worth: without it the gradients
    of the few frames the blend only approaches swamp all others."""
    if mse_floor <= 0 or block_mse_weight < 0:
        raise ValueError(
            f"mse_floor must be > 0 and block_mse_weight >= 0; got {mse_floor}, {block_mse_weight}"
        )

    def log_mse(x: Tensor) -> Tensor:
        return torch.log10(((x - target) / 2).square().mean(dim=(1, 2, 3)) + mse_floor)

    p_block = gate.expand(torch.sigmoid(logits[:, :1]))
    blocks = p_block * frame + (1 - p_block) * anchor
    per_frame = log_mse(blocks)
    loss = per_frame.mean()
    if block_mse_weight:
        mean_mse = ((blocks - target) / 2).square().mean()
        loss = loss + block_mse_weight * torch.log10(mean_mse + mse_floor)
    gap = (log_mse(anchor) - per_frame).detach()  # > 0: the blocks are better than keeping
    frame_logit = logits[:, 1, 0, 0]
    bce = F.binary_cross_entropy_with_logits(frame_logit, (gap > 0).float(), reduction="none")
    return loss + (bce * gap.abs()).mean()
