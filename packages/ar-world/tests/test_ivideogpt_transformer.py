"""`IVideoGPTTransformer` loads the released action-conditioned state dicts strictly and
reproduces their teacher-forced logits (parity fixtures); actions act only from their slot on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import ACT_COND, LOGITS_ATOL, PARITY, io, layout, needs_fixtures, transformer

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.llama import LLAMA_SIZES, LlamaConfig


@needs_fixtures
@pytest.mark.parametrize("case", ACT_COND)
def test_released_action_conditioned_weights_give_the_recorded_logits(case):
    ref, lay, model = io(case), layout(case), transformer(case)
    with torch.no_grad():
        logits = model(ref["input_ids"], lay, ref["actions"])
        zeroed = model(ref["input_ids"], lay, torch.zeros_like(ref["actions"]))
    assert (logits - ref["logits"]).abs().max() < LOGITS_ATOL
    first = lay.prelude_length  # the first sdf: the actions act from there on only
    assert torch.equal(zeroed[:, :first], logits[:, :first])
    assert (zeroed[:, first:] - logits[:, first:]).abs().max() > 0.1


@needs_fixtures
def test_weights_of_the_other_kind_are_refused():
    state = {k: v for k, v in transformer("bair-64-act-cond").state_dict().items()}
    config = transformer("bair-64-act-cond").config
    with pytest.raises(ValueError, match="action_dim=None"):
        IVideoGPTTransformer(config, None).load_released(state)
    free = transformer("oxe-64-act-free").llm.state_dict()
    with pytest.raises(ValueError, match="action-free model"):
        IVideoGPTTransformer(transformer("oxe-64-act-free").config, 4).load_released(free)


@pytest.mark.parametrize("action_dim", [4, 5])
def test_released_action_conditioned_size_has_the_released_keys(action_dim):
    with torch.device("meta"):
        model = IVideoGPTTransformer(LLAMA_SIZES["ivideogpt-138m"], action_dim)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    counts = {4: 138_438_144, 5: 138_438_912}
    assert sum(v.numel() for v in model.state_dict().values()) == counts[action_dim]
    if PARITY.is_dir():
        path = PARITY / "keys_full" / f"transformer-138m-act-cond-a{action_dim}.json"
        assert ours == json.loads(path.read_text())


def test_actions_are_checked():
    lay = IVideoGPTLayout(1, (2, 2), (1, 1), 4, 3)
    model = IVideoGPTTransformer(LlamaConfig(lay.vocab_size, 16, 32, 1, 2, 2), 2).eval()
    ids = lay.build(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 1, 1).long())
    with pytest.raises(ValueError, match="needs actions"):
        model(ids, lay)
    with pytest.raises(ValueError, match=r"T >= 2"):
        model(ids, lay, torch.zeros(1, 1, 2))
    assert model(ids, lay, torch.zeros(1, 3, 2)).shape == (1, ids.shape[1], lay.vocab_size)
