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


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions are slower with several threads on a small shared CPU (about 3x on
    2 cores); run this package's tests single-threaded and restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
