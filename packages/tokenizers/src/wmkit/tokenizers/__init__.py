"""wmkit.tokenizers: video tokenizers (VidTok-style causal 3D with KL or FSQ bottlenecks;
iVideoGPT-style compressive tokenizer with context/future tokens; iVideoGPT's own plain-VQ
compressive tokenizer, which loads the released checkpoints; patch VQ with a k-means
codebook for tile-based games).

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
from wmkit.tokenizers.compressive import (
    COMPRESSIVE_SIZES,
    CompressiveOutput,
    CompressiveTokenizer,
    FrameTokens,
)
from wmkit.tokenizers.cross_attention import ContextCrossAttention
from wmkit.tokenizers.discriminator import PatchDiscriminator3D
from wmkit.tokenizers.fsq import FSQQuantizer, QuantizerOutput
from wmkit.tokenizers.ivideogpt_vq import (
    IVIDEOGPT_TOKENIZER_SIZES,
    DecodedContext,
    IVideoGPTCodes,
    IVideoGPTTokenizer,
    IVideoGPTTokenizerOutput,
)
from wmkit.tokenizers.kl import GaussianOutput, GaussianRegularizer
from wmkit.tokenizers.metrics import psnr, ssim
from wmkit.tokenizers.nearest_vq import NearestVQ, NearestVQOutput
from wmkit.tokenizers.patch_vq import PatchVQOutput, PatchVQTokenizer
from wmkit.tokenizers.vidtok import (
    VIDTOK_SIZES,
    TokenizerOutput,
    VidTokDecoder,
    VidTokEncoder,
    VidTokStream,
    VidTokTokenizer,
)
from wmkit.tokenizers.vidtok_layout import VidTokLayout
from wmkit.tokenizers.vq import VQQuantizer

__all__ = [
    "COMPRESSIVE_SIZES",
    "IVIDEOGPT_TOKENIZER_SIZES",
    "VIDTOK_SIZES",
    "AlphaBlender",
    "CausalConv3d",
    "CausalResBlock3d",
    "CompressiveModule",
    "CompressiveOutput",
    "CompressiveTokenizer",
    "ContextCrossAttention",
    "DecodedContext",
    "FSQQuantizer",
    "FrameAttention",
    "FrameConv2d",
    "FrameNorm",
    "FrameTokens",
    "GaussianOutput",
    "GaussianRegularizer",
    "IVideoGPTCodes",
    "IVideoGPTModule",
    "IVideoGPTTokenizer",
    "IVideoGPTTokenizerOutput",
    "NearestVQ",
    "NearestVQOutput",
    "PatchDiscriminator3D",
    "PatchVQModule",
    "PatchVQOutput",
    "PatchVQTokenizer",
    "QuantizerOutput",
    "SpatialDownsample",
    "SpatialResBlock",
    "SpatialUpsample",
    "StreamingModule",
    "TemporalDownsample",
    "TemporalResBlock",
    "TemporalUpsample",
    "TokenizerOutput",
    "VQQuantizer",
    "VidTokDecoder",
    "VidTokEncoder",
    "VidTokLayout",
    "VidTokModule",
    "VidTokStream",
    "VidTokTokenizer",
    "psnr",
    "ssim",
    "streaming",
]


def __getattr__(name: str):  # lazy: importing the package must not import lightning
    if name == "CompressiveModule":
        from wmkit.tokenizers.compressive_lit import CompressiveModule

        return CompressiveModule
    if name == "IVideoGPTModule":
        from wmkit.tokenizers.ivideogpt_lit import IVideoGPTModule

        return IVideoGPTModule
    if name == "PatchVQModule":
        from wmkit.tokenizers.patch_vq_lit import PatchVQModule

        return PatchVQModule
    if name == "VidTokModule":
        from wmkit.tokenizers.lit import VidTokModule

        return VidTokModule
    raise AttributeError(f"module 'wmkit.tokenizers' has no attribute {name!r}")
