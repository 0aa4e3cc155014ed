"""wmkit.ar_world: autoregressive transformer world models over frame, action and reward
tokens (iVideoGPT, MineWorld), composed of a transformer, a token layout and a decoding
strategy (KV-cached raster and diagonal decoding, within a frame or across frames in
``rollout``)."""

from wmkit.ar_world.action_encoder import ActionEncoder
from wmkit.ar_world.cross_frame_decoding import CrossFrameDecoder, cross_frame_diagonal_decode
from wmkit.ar_world.diagonal_decoding import DiagonalDecoder, diagonal_decode
from wmkit.ar_world.frame_codec import FrameCodec
from wmkit.ar_world.ivideogpt_decoding import IVideoGPTDecoder
from wmkit.ar_world.ivideogpt_finetune import finetune_start
from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_lit import IVideoGPTFinetuneModule
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.ivideogpt_world_model import IVideoGPTState, IVideoGPTWorldModel
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.layout import SequenceLayout
from wmkit.ar_world.llama import LLAMA_SIZES, LlamaConfig, LlamaLM
from wmkit.ar_world.raster_decoding import RasterDecoder, raster_decode
from wmkit.ar_world.sampling import Sampler
from wmkit.ar_world.sizes import SIZES
from wmkit.ar_world.state import ARState, ARWorldModelOutput
from wmkit.ar_world.token_decoder import TokenDecoder
from wmkit.ar_world.token_layout import TokenLayout
from wmkit.ar_world.transformer import Transformer
from wmkit.ar_world.world_model import ARWorldModel

__all__ = [
    "LLAMA_SIZES",
    "SIZES",
    "ARState",
    "ARWorldModel",
    "ARWorldModelOutput",
    "ActionEncoder",
    "CrossFrameDecoder",
    "DiagonalDecoder",
    "FrameCodec",
    "IVideoGPTDecoder",
    "IVideoGPTFinetuneModule",
    "IVideoGPTLayout",
    "IVideoGPTState",
    "IVideoGPTTransformer",
    "IVideoGPTWorldModel",
    "KVCache",
    "LlamaConfig",
    "LlamaLM",
    "RasterDecoder",
    "Sampler",
    "SequenceLayout",
    "TokenDecoder",
    "TokenLayout",
    "Transformer",
    "cross_frame_diagonal_decode",
    "diagonal_decode",
    "finetune_start",
    "raster_decode",
]
