"""`IVideoGPTDecoder` reproduces the original code's greedy generations id for id (parity
fixtures: action-free models emit their own slots, action-conditioned frames get an appended
``sdf`` with the next action, goal-conditioned prompts start with the goal), and decoding with
the KV cache equals recomputing the whole sequence for every id."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import CASES, case_json, io, layout, needs_fixtures, transformer

from wmkit.ar_world.ivideogpt_decoding import IVideoGPTDecoder
from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.llama import LlamaConfig
from wmkit.ar_world.sampling import Sampler

GREEDY = Sampler(temperature=0)


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_greedy_generation_reproduces_the_recorded_ids(case):
    ref, lay, model = io(case), layout(case), transformer(case)
    frames = case_json(case)["generated_frames"]
    actions = ref.get("actions")
    with torch.no_grad():
        ids = IVideoGPTDecoder(GREEDY).generate(
            model, lay, ref["context_token_ids"], frames, actions
        )
    assert torch.equal(ids, ref["gen_ids"])
    assert torch.equal(lay.parse_future(ids), ref["gen_future_token_ids"])


@needs_fixtures
def test_recomputing_without_a_cache_reproduces_them_too():
    case = "vp2-robosuite-64-act-cond"
    ref, lay, model = io(case), layout(case), transformer(case)
    with torch.no_grad():
        ids = IVideoGPTDecoder(GREEDY, use_cache=False).generate(
            model, lay, ref["context_token_ids"], 2, ref["actions"]
        )
    assert torch.equal(ids, ref["gen_ids"])


@torch.no_grad()
@pytest.mark.parametrize("action_dim", [None, 3])
def test_cache_equals_full_recompute_when_sampling(action_dim):
    lay = IVideoGPTLayout(2, (2, 2), (1, 2), context_vocab_size=6, future_vocab_size=5)
    torch.manual_seed(0)
    model = IVideoGPTTransformer(
        LlamaConfig(lay.vocab_size, 32, 48, 2, 4, 2, max_position_embeddings=64), action_dim
    )
    context = torch.randint(0, 6, (3, 2, 2, 2))
    actions = None if action_dim is None else torch.randn(3, 5, action_dim)
    sampler = Sampler(temperature=1.0, top_k=8)
    outs, logits = [], []
    for use_cache in (True, False):
        decoder = IVideoGPTDecoder(sampler, use_cache=use_cache)
        torch.manual_seed(5)
        cursor = decoder.start(model.eval(), lay, context, 4)
        grids = [
            decoder.next_frame(model, lay, cursor, None if actions is None else actions[:, 1 + i])
            for i in range(4)
        ]
        outs.append((cursor.ids, torch.stack(grids, 1)))
        logits.append(cursor.logits)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=0)
    assert outs[0][0].shape == (3, lay.sequence_length(4))
    assert torch.equal(lay.parse_future(outs[0][0]), outs[0][1])


def test_too_many_frames_for_the_positions_are_refused():
    lay = IVideoGPTLayout(1, (2, 2), (1, 1), 4, 3)
    model = IVideoGPTTransformer(
        LlamaConfig(lay.vocab_size, 16, 32, 1, 2, 2, max_position_embeddings=12)
    )
    with pytest.raises(ValueError, match="need 14 positions"):
        IVideoGPTDecoder(GREEDY).start(model, lay, torch.zeros(1, 1, 2, 2).long(), 5)
