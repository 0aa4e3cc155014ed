"""The iVideoGPT parity fixtures (``../shared/parity/ivideogpt``, made by running the original
thuml/iVideoGPT code with random weights; see that README) and helpers to load them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer, released_action_dim
from wmkit.ar_world.llama import LlamaConfig

REPO = Path(__file__).resolve().parents[3]
PARITY = Path(os.environ.get("WMKIT_PARITY_DIR", REPO.parent / "shared" / "parity")) / "ivideogpt"
ACT_COND = ["bair-64-act-cond", "vp2-robosuite-64-act-cond"]
ACTION_FREE = ["oxe-64-act-free", "oxe-64-goal-cond"]
CASES = ACT_COND + ACTION_FREE
LOGITS_ATOL = 1e-4

needs_fixtures = pytest.mark.skipif(
    not PARITY.is_dir(),
    reason=f"iVideoGPT parity fixtures not found at {PARITY} (a clone without ../shared; "
    "set WMKIT_PARITY_DIR to the directory holding ivideogpt/)",
)


def case_json(name: str) -> dict:
    return json.loads((PARITY / name / "case.json").read_text())


def io(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(PARITY / name / "io.safetensors"))


def layout(name: str) -> IVideoGPTLayout:
    c = case_json(name)
    return IVideoGPTLayout(
        context_frames=c["context_length"],
        context_grid=(16, 16),
        future_grid=(4, 4),
        context_vocab_size=c["num_vq_embeddings"],
        future_vocab_size=c["num_dyn_embeddings"],
    )


def transformer(name: str) -> IVideoGPTTransformer:
    folder = PARITY / name / "transformer"
    config = LlamaConfig.from_hf(json.loads((folder / "config.json").read_text()))
    state = load_file(str(folder / "model.safetensors"))
    model = IVideoGPTTransformer(config, released_action_dim(state))
    model.load_released(state)
    return model.eval()
