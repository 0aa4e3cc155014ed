"""`LlamaLM` computes Hugging Face's Llama: the released iVideoGPT transformers' keys load
strictly and their teacher-forced logits match the original code's (parity fixtures); the KV
cache gives the full pass's logits; grouped-query attention equals repeated heads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import ACTION_FREE, LOGITS_ATOL, PARITY, io, needs_fixtures

from wmkit.ar_world.llama import LLAMA_SIZES, LlamaConfig, LlamaLM
from wmkit.core.testing import check_causality


def _tiny(**kwargs) -> LlamaLM:
    torch.manual_seed(0)
    fields = dict(
        vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
    )  # fmt: skip
    fields.update(kwargs)
    model = LlamaLM(LlamaConfig(**fields)).eval()
    for p in model.parameters():  # norms away from 1 so that they matter
        torch.nn.init.normal_(p, std=0.3 if p.ndim > 1 else 1.0)
    return model


@needs_fixtures
@pytest.mark.parametrize("case", ACTION_FREE)
def test_released_action_free_weights_give_the_recorded_logits(case):
    folder = PARITY / case / "transformer"
    config = LlamaConfig.from_hf(json.loads((folder / "config.json").read_text()))
    model = LlamaLM(config).eval()
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    ref = io(case)
    with torch.no_grad():
        logits = model(ref["input_ids"])
    assert logits.shape == ref["logits"].shape
    assert (logits - ref["logits"]).abs().max() < LOGITS_ATOL


@torch.no_grad()
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_cache_in_pieces_equals_one_full_pass(kv_heads):
    model = _tiny(num_key_value_heads=kv_heads)
    ids = torch.randint(0, 40, (2, 23), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = model.new_cache(2, 32)
    pieces = [model(ids[:, a:b], cache=cache) for a, b in ((0, 9), (9, 10), (10, 17), (17, 23))]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_later_ids_do_not_change_earlier_logits():
    model = _tiny()
    ids = torch.randint(0, 40, (1, 12), generator=torch.Generator().manual_seed(2))
    check_causality(
        lambda x: model(x), ids, unaffected=lambda t: t,
        perturb=lambda part: (part + 1) % 40, what="ids",
    )  # fmt: skip


@torch.no_grad()
def test_grouped_query_attention_equals_repeated_key_value_heads():
    gqa = _tiny(num_key_value_heads=2)
    mha = LlamaLM(LlamaConfig(**{**gqa.config.__dict__, "num_key_value_heads": 4})).eval()
    state = gqa.state_dict()
    for key in list(state):
        if key.endswith(("k_proj.weight", "v_proj.weight")):  # each kv head serves 2 heads
            state[key] = state[key].unflatten(0, (2, -1)).repeat_interleave(2, 0).flatten(0, 1)
    mha.load_state_dict(state, strict=True)
    ids = torch.randint(0, 40, (1, 10), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gqa(ids), mha(ids), atol=1e-5, rtol=0)


def test_released_sizes_have_the_released_keys_and_shapes():
    released = {"ivideogpt-138m": "transformer-138m", "ivideogpt-436m": "transformer-medium-436m"}
    for size, name in released.items():
        with torch.device("meta"):
            model = LlamaLM(LLAMA_SIZES[size])
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        if PARITY.is_dir():
            assert ours == json.loads((PARITY / "keys_full" / f"{name}.json").read_text())
        counts = {"ivideogpt-138m": 138_434_304, "ivideogpt-436m": 436_261_888}
        assert sum(v.numel() for v in model.state_dict().values()) == counts[size]


def test_bad_inputs_and_unsupported_configs_are_refused():
    model = _tiny()
    with pytest.raises(ValueError, match=r"ids must be in \[0, 40\)"):
        model(torch.tensor([[3, 40]]))
    with pytest.raises(ValueError, match="exactly one of ids"):
        model()
    with pytest.raises(ValueError, match="past max_position_embeddings"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="rope_scaling"):
        LlamaConfig.from_hf({"hidden_size": 32, "rope_scaling": {"type": "linear", "factor": 2}})
    with pytest.raises(ValueError, match="lacks .*intermediate_size"):
        LlamaConfig.from_hf({"vocab_size": 40, "hidden_size": 32})
    with pytest.raises(ValueError, match="num_key_value_heads"):
        LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=3)
