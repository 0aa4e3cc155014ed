"""A shape-only discrete tokenizer for building real-size models on the meta device."""

from __future__ import annotations

from wmkit.core import Latents


class ShapeTokenizer:
    """Satisfies ``wmkit.core.Tokenizer`` by shape: ``vocab_size`` ids, ``compression``× down."""

    kind = "discrete"
    latent_channels = None
    temporal_compression = 1

    def __init__(self, vocab_size: int = 8192, compression: int = 8) -> None:
        self.vocab_size = vocab_size
        self.spatial_compression = compression

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        c = self.spatial_compression
        return (num_frames, height // c, width // c)

    def encode(self, video) -> Latents:  # pragma: no cover - shape only
        raise NotImplementedError

    def decode(self, latents):  # pragma: no cover - shape only
        raise NotImplementedError
