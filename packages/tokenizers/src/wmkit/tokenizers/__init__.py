"""wmkit.tokenizers: video tokenizers (VidTok-style causal 3D with KL or FSQ bottlenecks).

Reusable pieces live in their own modules (``causal_conv``, ``blocks``, ``fsq``, ``kl``,
``discriminator``, ``losses``, ``metrics``) so other tokenizers can share them.
"""

from wmkit.tokenizers.blocks import (
    AlphaBlender,
    CausalResBlock3d,
    FrameAttention,
    FrameNorm,
    SpatialDownsample,
    SpatialResBlock,
    SpatialUpsample,
    TemporalDownsample,
    TemporalResBlock,
    TemporalUpsample,
)
from wmkit.tokenizers.causal_conv import CausalConv3d, FrameConv2d, StreamingModule, streaming
from wmkit.tokenizers.discriminator import PatchDiscriminator3D
from wmkit.tokenizers.fsq import FSQQuantizer, QuantizerOutput
from wmkit.tokenizers.kl import GaussianOutput, GaussianRegularizer
from wmkit.tokenizers.metrics import psnr, ssim
from wmkit.tokenizers.vidtok import (
    VIDTOK_SIZES,
    TokenizerOutput,
    VidTokDecoder,
    VidTokEncoder,
    VidTokTokenizer,
)

__all__ = [
    "VIDTOK_SIZES",
    "AlphaBlender",
    "CausalConv3d",
    "CausalResBlock3d",
    "FSQQuantizer",
    "FrameAttention",
    "FrameConv2d",
    "FrameNorm",
    "GaussianOutput",
    "GaussianRegularizer",
    "PatchDiscriminator3D",
    "QuantizerOutput",
    "SpatialDownsample",
    "SpatialResBlock",
    "SpatialUpsample",
    "StreamingModule",
    "TemporalDownsample",
    "TemporalResBlock",
    "TemporalUpsample",
    "TokenizerOutput",
    "VidTokDecoder",
    "VidTokEncoder",
    "VidTokModule",
    "VidTokTokenizer",
    "psnr",
    "ssim",
    "streaming",
]


def __getattr__(name: str):  # lazy: importing the package must not import lightning
    if name == "VidTokModule":
        from wmkit.tokenizers.lit import VidTokModule

        return VidTokModule
    raise AttributeError(f"module 'wmkit.tokenizers' has no attribute {name!r}")
