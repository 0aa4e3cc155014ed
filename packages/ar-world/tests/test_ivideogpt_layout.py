"""`IVideoGPTLayout` builds the original code's id sequences exactly (parity fixtures), puts
actions where ``HeadModelWithAction`` adds them, and reads generated frames back as
``detokenize`` does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import ACT_COND, CASES, case_json, io, layout, needs_fixtures

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_sequences_equal_the_recorded_ones(case):
    ref, lay, c = io(case), layout(case), case_json(case)
    assert (lay.scf, lay.sdf, lay.vocab_size) == (c["scf_token"], c["sdf_token"], c["vocab_size"])
    assert lay.prelude_length == c["prelude_tokens"]
    ids = lay.build(ref["context_token_ids"], ref["future_token_ids"])
    assert torch.equal(ids, ref["input_ids"])
    assert lay.sequence_length(3) == c["sequence_length"] == ids.shape[1]
    assert torch.equal(lay.prompt(ref["context_token_ids"]), ref["gen_input_ids"])
    assert torch.equal(lay.parse_future(ref["input_ids"]), ref["future_token_ids"])
    # generated sequences: out-of-range ids in future slots are clamped as detokenize does
    assert torch.equal(lay.parse_future(ref["gen_ids"]), ref["gen_future_token_ids"])


@needs_fixtures
@pytest.mark.parametrize("case", ACT_COND)
def test_action_positions_are_the_recorded_ones(case):
    ref, lay = io(case), layout(case)
    assert torch.equal(lay.action_positions(3), ref["action_positions"])
    assert torch.equal(lay.action_indices(3), ref["action_index"])
    assert (ref["input_ids"][0, lay.action_positions(3)] == lay.sdf).all()


def test_small_layout_by_hand():
    lay = IVideoGPTLayout(2, (1, 2), (1, 1), context_vocab_size=5, future_vocab_size=3)
    ctx = torch.tensor([[[[0, 1]], [[2, 3]]]])  # [1, 2, 1, 2]
    fut = torch.tensor([[[[2]], [[0]]]])  # [1, 2, 1, 1]
    # scf = 8, sdf = 9, dynamics ids shifted by 5
    assert lay.build(ctx, fut).tolist() == [[0, 1, 8, 2, 3, 9, 7, 9, 5]]
    assert lay.prompt(ctx).tolist() == [[0, 1, 8, 2, 3, 9]]
    assert lay.future_positions(2).tolist() == [[6], [8]]
    generated = torch.tensor([[0, 1, 8, 2, 3, 9, 1, 4, 9]])  # 1 is not a dynamics id
    assert lay.parse_future(generated).tolist() == [[[[0]], [[2]]]]


def test_bad_ids_are_refused():
    lay = IVideoGPTLayout(1, (2, 2), (1, 1), 4, 3)
    with pytest.raises(ValueError, match=r"context_ids must be long \[B, 1, 2, 2\]"):
        lay.build(torch.zeros(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"context_ids must be in \[0, 4\)"):
        lay.build(torch.full((1, 1, 2, 2), 4))
    with pytest.raises(ValueError, match=r"future_ids must be in \[0, 3\)"):
        lay.build(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.full((1, 1, 1, 1), 3))
    with pytest.raises(ValueError, match="complete future frames"):
        lay.parse_future(torch.zeros(1, 6, dtype=torch.long), 2)
