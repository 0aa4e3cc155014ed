"""wmkit.ar_world: autoregressive transformer world models over frame, action and reward
tokens (iVideoGPT, MineWorld), with KV-cached raster and diagonal decoding."""

from wmkit.ar_world.diagonal_decoding import diagonal_decode
from wmkit.ar_world.kv_cache import KVCache
from wmkit.ar_world.layout import SequenceLayout
from wmkit.ar_world.raster_decoding import raster_decode
from wmkit.ar_world.sampling import Sampler
from wmkit.ar_world.sizes import SIZES
from wmkit.ar_world.transformer import Transformer
from wmkit.ar_world.world_model import ARState, ARWorldModel, ARWorldModelOutput

__all__ = [
    "SIZES",
    "ARState",
    "ARWorldModel",
    "ARWorldModelOutput",
    "KVCache",
    "Sampler",
    "SequenceLayout",
    "Transformer",
    "diagonal_decode",
    "raster_decode",
]
