"""Raster and diagonal decoding, and the sampler."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import spy, squares, tiny_model

from wmkit.ar_world import Sampler, diagonal_decode, raster_decode


@pytest.mark.parametrize("grid", [(16, 16), (16, 24)])
def test_diagonal_window_1_equals_raster_token_for_token(grid):
    eps, frames, actions = squares(length=5)
    frames = torch.nn.functional.interpolate(frames.flatten(0, 1), size=grid).unflatten(0, (2, 5))
    common = {"temperature": 0.0, "frame_size": grid, "max_frames": 4}
    raster = tiny_model(eps.action_spec, decoding="raster", **common)
    diag = tiny_model(eps.action_spec, decoding="diagonal", window=1, **common)
    a = raster.reset(frames[:, :2])
    b = diag.reset(frames[:, :2])
    for t in range(3):
        oa, ob = raster.step(a, actions[:, t]), diag.step(b, actions[:, t])
        assert torch.equal(oa.state.tokens[-1], ob.state.tokens[-1])
        assert torch.equal(oa.frame, ob.frame)
        a, b = oa.state, ob.state


def test_diagonal_decoding_uses_fewer_forward_passes():
    eps, frames, actions = squares()
    h = w = 4
    passes = {}
    for window in (1, 2, 4):
        model = tiny_model(eps.action_spec, decoding="diagonal", window=window, temperature=0.0)
        state = model.reset(frames[:, :2])
        calls = spy(model, "run", lambda state, x, positions: x.shape[1])
        model.step(state, actions[:, 0])
        passes[window] = len(calls) - 1  # minus the action/slot pass
    assert passes[1] == h * w
    assert passes[4] == h + w - 1  # one pass per anti-diagonal
    assert passes[1] > passes[2] > passes[4]


def test_diagonal_covers_every_token_and_feeds_each_position_finally_with_the_real_token():
    h, w, v = 3, 5, 7
    written: dict[int, int] = {}
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(h * w + 1, v, generator=gen)

    def feed(ids, index):
        for i, j in zip(ids[0].tolist(), index.tolist()):
            written[j] = i
        return table[index + 1][None].expand(1, -1, -1)

    grid = diagonal_decode(feed, table[0][None], h, w, lambda lg: lg.argmax(-1), window=3)
    assert set(written) == set(range(h * w))
    assert [written[j] for j in range(h * w)] == grid.flatten().tolist()
    ref = raster_decode(feed, table[0][None], h, w, lambda lg: lg.argmax(-1))
    assert torch.equal(grid, ref)  # logits depend only on the position here


def test_diagonal_samples_every_row_of_a_tick_in_one_call():
    """However many rows are in flight, a tick samples them in one call (the per-row loop
    launched ~6 kernels per row and tick, more than a GPU pass costs at batch 1), and the
    result is what raster decoding gives."""
    h, w, v = 4, 6, 9
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(h * w + 1, v, generator=gen)
    feeds, draws = [], []

    def feed(ids, index):
        feeds.append(index.numel())
        return table[index + 1][None].expand(1, -1, -1)

    def sample(logits):
        draws.append(logits.shape[1])
        return logits.argmax(-1)

    grid = diagonal_decode(feed, table[0][None], h, w, sample, window=h)
    assert len(feeds) == h + w - 1  # one pass per anti-diagonal
    assert len(draws) == len(feeds)  # one sample call per tick (the first on first_logits)
    assert max(draws) == h  # … covering every row in flight
    row_by_row = raster_decode(feed, table[0][None], h, w, lambda lg: lg.argmax(-1))
    assert torch.equal(grid, row_by_row)


def test_sampler():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(64, 1)
    assert torch.equal(Sampler(0.0)(logits), torch.ones(64, dtype=torch.long))
    assert torch.equal(Sampler(1.0, top_k=1)(logits), torch.ones(64, dtype=torch.long))
    assert torch.equal(Sampler(1.0, top_p=0.1)(logits), torch.ones(64, dtype=torch.long))
    torch.manual_seed(0)
    draws = Sampler(5.0, top_k=2)(logits)
    assert set(draws.tolist()) <= {1, 3} and len(set(draws.tolist())) == 2
    with pytest.raises(ValueError, match="temperature"):
        Sampler(-1.0)
    with pytest.raises(ValueError, match="top_p"):
        Sampler(1.0, top_p=0.0)
