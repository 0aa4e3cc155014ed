"""`IVideoGPTModule`: the original's loss terms, training from scratch, fine-tuning a
converted fixture tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wmkit.core.testing import moving_squares
from wmkit.core.video import to_float_video
from wmkit.tokenizers import IVIDEOGPT_TOKENIZER_SIZES, IVideoGPTTokenizer
from wmkit.tokenizers.convert_ivideogpt import load_released_tokenizer
from wmkit.tokenizers.ivideogpt_lit import IVideoGPTModule

REPO = Path(__file__).resolve().parents[3]
PARITY = Path(os.environ.get("WMKIT_PARITY_DIR", REPO.parent / "shared" / "parity")) / "ivideogpt"


def _module(**kwargs) -> IVideoGPTModule:
    torch.manual_seed(0)
    tok = IVideoGPTTokenizer(**IVIDEOGPT_TOKENIZER_SIZES["tiny"])
    return IVideoGPTModule(tok, perceptual_weight=0.0, **kwargs)


def _clips(n: int = 4, length: int = 4) -> torch.Tensor:
    return to_float_video(moving_squares(n, length, 16, seed=0).frames)  # [N, T, C, H, W]


def _steps(module: IVideoGPTModule, frames: torch.Tensor, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(module.tokenizer.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        losses, _ = module.losses(frames)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append(losses["loss"].item())
    return history


def test_loss_is_the_originals_sum_of_terms():
    """Total = recon_weight·(L1 context + L1 future, in [0, 1] units) + both VQ losses."""
    module = _module(recon_weight=2.0)
    frames = _clips()
    torch.manual_seed(1)
    losses, recon = module.losses(frames)
    assert set(losses) == {"rec_context", "rec_future", "context_vq_loss", "future_vq_loss", "loss"}
    want_rec = ((recon[:, :2] - frames[:, :2]) / 2).abs().mean()
    torch.testing.assert_close(losses["rec_context"], want_rec)
    vq = losses["context_vq_loss"] + losses["future_vq_loss"]
    total = 2.0 * (losses["rec_context"] + losses["rec_future"]) + vq
    torch.testing.assert_close(losses["loss"], total)
    l2 = _module(recon_loss="l2")
    assert l2.losses(frames)[0]["rec_future"] < losses["rec_future"]  # errors below 1


def test_loss_falls_training_from_scratch():
    module = _module()
    module.train()
    history = _steps(module, _clips(), steps=40, lr=3e-3)
    assert sum(history[-5:]) / 5 < 0.6 * sum(history[:5]) / 5, history


def test_clips_must_have_future_frames():
    module = _module()
    with pytest.raises(ValueError, match="more than context_length = 2"):
        module.losses(_clips(length=2))
    with pytest.raises(ValueError, match="recon_loss"):
        _module(recon_loss="l3")


@pytest.mark.skipif(not PARITY.is_dir(), reason=f"iVideoGPT parity fixtures not at {PARITY}")
def test_converted_fixture_tokenizer_fine_tunes():
    """A tokenizer loaded from a released-layout folder trains on with the module: the loss on
    its own clip falls within a few steps."""
    tok = load_released_tokenizer(PARITY / "oxe-64-act-free" / "tokenizer")
    io = load_file(PARITY / "oxe-64-act-free" / "io.safetensors")
    frames = io["frames_uint8"].permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    module = IVideoGPTModule(tok, perceptual_weight=0.0)
    module.train()
    torch.manual_seed(0)
    history = _steps(module, frames, steps=8, lr=1e-3)
    assert history[-1] < 0.8 * history[0], history
