"""FSQ: ids ⇄ codes round trip, vocabulary sizes, entropy term, errors."""

import math

import pytest
import torch

from wmkit.tokenizers.fsq import FSQQuantizer


@pytest.mark.parametrize("levels", [[8, 8, 8, 6, 5], [8] * 6])
def test_ids_codes_round_trip(levels):
    q = FSQQuantizer(levels)
    assert q.vocab_size == math.prod(levels)  # 15360 and 262144
    ids = torch.randint(0, q.vocab_size, (2, 3, 4, 4))
    codes = q.ids_to_codes(ids)  # [B, D, T, h, w]
    assert codes.shape == (2, len(levels), 3, 4, 4) and codes.abs().max() <= 1
    assert torch.equal(q.codes_to_ids(codes), ids)
    out = q(torch.randn(2, len(levels), 3, 4, 4) * 3)
    assert out.ids.dtype == torch.long
    torch.testing.assert_close(q.ids_to_codes(out.ids), out.codes, atol=1e-6, rtol=0)
    assert torch.equal(q.codes_to_ids(out.codes), out.ids)


def test_every_id_is_reachable_and_distinct():
    q = FSQQuantizer([3, 4, 5])
    ids = torch.arange(q.vocab_size).view(1, -1)
    codes = q.ids_to_codes(ids)  # [1, 3, N]
    assert torch.unique(codes[0].T, dim=0).shape[0] == q.vocab_size


def test_entropy_term_has_gradient():
    q = FSQQuantizer([8, 8, 8, 6, 5], entropy_weight=0.1)
    z = torch.randn(2, 5, 2, 3, 3, requires_grad=True)
    out = q(z)
    assert torch.isfinite(out.loss) and set(out.logs) == {"fsq_sample_entropy", "fsq_batch_entropy"}
    (out.loss + out.codes.sum()).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="levels"):
        FSQQuantizer([2, 8])
    q = FSQQuantizer([8, 8, 8])
    with pytest.raises(ValueError, match=r"\[0, 512\)"):
        q.ids_to_codes(torch.tensor([[512]]))
    with pytest.raises(TypeError, match="integer"):
        q.ids_to_codes(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="z must be"):
        q(torch.randn(1, 4, 2, 2))
