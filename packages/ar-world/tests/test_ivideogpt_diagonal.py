"""Diagonal decoding of iVideoGPT's future frames (``IVideoGPTDecoder(decoding="diagonal")``,
MineWorld §3.3): with ``offset`` = the row length (or ``window=1``) it is raster order id for
id, by construction; otherwise it is an approximation of the raster-trained model that is
still causal (a frame does not depend on later actions, a batch row not on the others) and
deterministic, leaves the KV cache holding the real ids (not the placeholders), and needs
fewer forward passes. On the
parity fixtures' released weights greedy diagonal decoding runs and returns valid ids."""

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
LAYOUT = IVideoGPTLayout(2, (2, 2), (3, 4), context_vocab_size=6, future_vocab_size=5)


def tiny(action_dim: int | None) -> IVideoGPTTransformer:
    torch.manual_seed(0)
    config = LlamaConfig(LAYOUT.vocab_size, 32, 48, 2, 4, 2, max_position_embeddings=96)
    model = IVideoGPTTransformer(config, action_dim)
    for p in model.parameters():  # weights large enough that every input matters
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


class PassCounter:
    """Counts the transformer's forward passes."""

    def __init__(self, model: IVideoGPTTransformer) -> None:
        self.n = 0
        model.llm.register_forward_hook(lambda *_: setattr(self, "n", self.n + 1))


def rollout(model, decoder, context, actions, frames=3, seed=5):
    torch.manual_seed(seed)
    cursor = decoder.start(model, LAYOUT, context, frames)
    grids = [
        decoder.next_frame(model, LAYOUT, cursor, None if actions is None else actions[:, 1 + i])
        for i in range(frames)
    ]
    return cursor, torch.stack(grids, 1)


@torch.no_grad()
@pytest.mark.parametrize("action_dim", [None, 3])
@pytest.mark.parametrize("sampler", [GREEDY, Sampler(temperature=1.0, top_k=8)])
def test_offset_of_a_whole_row_or_window_one_is_raster_order(action_dim, sampler):
    model = tiny(action_dim)
    context = torch.randint(0, 6, (2, 2, 2, 2), generator=torch.Generator().manual_seed(1))
    actions = None if action_dim is None else torch.randn(2, 5, action_dim)
    raster, grids = rollout(model, IVideoGPTDecoder(sampler), context, actions)
    width = LAYOUT.future_grid[1]
    for window, offset in [(4, width), (1, 1)]:
        decoder = IVideoGPTDecoder(sampler, decoding="diagonal", window=window, offset=offset)
        cursor, diag_grids = rollout(model, decoder, context, actions)
        assert torch.equal(cursor.ids, raster.ids) and torch.equal(diag_grids, grids)
        torch.testing.assert_close(cursor.logits, raster.logits, atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("action_dim", [None, 3])
def test_diagonal_is_deterministic_causal_and_ends_on_the_real_ids(action_dim):
    model = tiny(action_dim)
    context = torch.randint(0, 6, (2, 2, 2, 2), generator=torch.Generator().manual_seed(2))
    actions = None if action_dim is None else torch.randn(2, 5, action_dim)
    decoder = IVideoGPTDecoder(GREEDY, decoding="diagonal", window=3, offset=1)
    a, grids = rollout(model, decoder, context, actions)
    b, again = rollout(model, decoder, context, actions, seed=9)
    assert torch.equal(a.ids, b.ids) and torch.equal(grids, again)
    assert a.ids.shape == (2, LAYOUT.sequence_length(3))
    assert torch.equal(LAYOUT.parse_future(a.ids), grids)
    # every slot of the cache is written, with the generated id rather than a placeholder:
    # the first layer's keys and values (which see only the id and its position) are those
    # of a teacher-forced pass (deeper layers differ: ids computed alongside a placeholder
    # keep what they saw, the approximation diagonal decoding makes)
    length = a.ids.shape[1]
    forced = model.llm.new_cache(2, length)
    model.llm(embeds=model.embed(a.ids, LAYOUT, actions), cache=forced)
    assert bool(a.cache.valid[:length].all())
    for got, want in [(a.cache.keys[0], forced.keys[0]), (a.cache.values[0], forced.values[0])]:
        torch.testing.assert_close(got[:, :, :length], want, atol=1e-5, rtol=0)
    # a batch row does not depend on another row's context
    other = context.clone()
    other[1] = (other[1] + 1) % 6
    c, _ = rollout(model, decoder, other, actions)
    assert torch.equal(c.ids[0], a.ids[0]) and not torch.equal(c.ids[1], a.ids[1])
    if actions is not None:  # a frame does not depend on later actions
        later = actions.clone()
        later[:, 3:] = -later[:, 3:]  # the actions of frames 2 … (frame i follows 1 + i)
        _, changed = rollout(model, decoder, context, later)
        assert torch.equal(changed[:, :2], grids[:, :2])
        assert not torch.equal(changed[:, 2], grids[:, 2])


@torch.no_grad()
def test_diagonal_needs_fewer_forward_passes():
    model = tiny(3)
    counter = PassCounter(model)
    context = torch.randint(0, 6, (1, 2, 2, 2))
    actions = torch.randn(1, 5, 3)
    h, w = LAYOUT.future_grid
    passes = {}
    for name, decoder in {
        "raster": IVideoGPTDecoder(GREEDY),
        "diagonal": IVideoGPTDecoder(GREEDY, decoding="diagonal", window=h, offset=1),
    }.items():
        cursor = decoder.start(model, LAYOUT, context, 2)
        counter.n = 0
        decoder.next_frame(model, LAYOUT, cursor, actions[:, 1])
        passes[name] = counter.n
    assert passes["raster"] == 1 + h * w  # the slot, then one pass per id
    # the slot, one pass per anti-diagonal after the first id (the first comes from the
    # slot's pass), and one more to feed the grid's last id (no later id depends on it
    # within the frame, but the cache must hold it)
    assert passes["diagonal"] == 1 + (h + w - 2) + 1
    assert passes["diagonal"] < passes["raster"]


def test_bad_diagonal_settings_are_refused():
    with pytest.raises(ValueError, match="decoding must be one of"):
        IVideoGPTDecoder(GREEDY, decoding="zigzag")
    with pytest.raises(ValueError, match="needs use_cache=True"):
        IVideoGPTDecoder(GREEDY, use_cache=False, decoding="diagonal")
    with pytest.raises(ValueError, match="window and offset"):
        IVideoGPTDecoder(GREEDY, decoding="diagonal", offset=0)


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_greedy_diagonal_runs_on_the_released_weights(case):
    ref, lay, model = io(case), layout(case), transformer(case)
    frames = case_json(case)["generated_frames"]
    decoder = IVideoGPTDecoder(GREEDY, decoding="diagonal")
    with torch.no_grad():
        ids = decoder.generate(model, lay, ref["context_token_ids"], frames, ref.get("actions"))
    assert ids.shape == ref["gen_ids"].shape
    assert torch.equal(ids[:, : lay.prelude_length], ref["gen_ids"][:, : lay.prelude_length])
    assert int(ids.min()) >= 0 and int(ids.max()) < lay.vocab_size
    future = lay.parse_future(ids)
    assert future.shape == ref["gen_future_token_ids"].shape
    assert int(future.min()) >= 0 and int(future.max()) < lay.future_vocab_size
