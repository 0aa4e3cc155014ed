"""3D PatchGAN discriminator for the optional adversarial loss (VidTok §3.3 trains with a
3D patch discriminator; MAGVIT uses the same idea). Not causal: it only judges clips."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from wmkit.tokenizers.blocks import num_groups

__all__ = ["PatchDiscriminator3D"]


class PatchDiscriminator3D(nn.Module):
    """Strided 3D convolutions → a map of real/fake logits, one per space-time patch.

    Args:
        in_channels: video channels.
        channels: width of the first layer (doubled per layer, capped at 8×).
        layers: number of stride-(1, 2, 2) downsampling layers.
    """

    def __init__(self, in_channels: int = 3, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [
            nn.Conv3d(in_channels, channels, (3, 4, 4), (1, 2, 2), (1, 1, 1)),
            nn.LeakyReLU(0.2),
        ]
        width = channels
        for i in range(1, layers):
            out = channels * min(2**i, 8)
            mods += [
                nn.Conv3d(width, out, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=False),
                nn.GroupNorm(num_groups(out), out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        mods.append(nn.Conv3d(width, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: Tensor) -> Tensor:
        """``[B, T, C, H, W]`` → logits ``[B, 1, T, h, w]``."""
        return self.net(rearrange(video, "b t c h w -> b c t h w"))
