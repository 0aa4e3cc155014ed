"""Shared fixtures for the tokenizer tests."""

from __future__ import annotations

import pytest
import torch

from wmkit.tokenizers import VidTokTokenizer


def _scrambled(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


@pytest.fixture
def tiny_kl() -> VidTokTokenizer:
    """Tiny KL-4 tokenizer with noisy weights (its zero-initialised temporal blocks mix time)."""
    torch.manual_seed(0)
    return _scrambled(VidTokTokenizer("tiny", regularizer="kl"))  # type: ignore[return-value]


@pytest.fixture
def tiny_fsq() -> VidTokTokenizer:
    """Tiny FSQ (8·8·8·6·5) tokenizer with noisy weights."""
    torch.manual_seed(0)
    return _scrambled(VidTokTokenizer("tiny", regularizer="fsq"))  # type: ignore[return-value]
