"""Diagonal decoding across frames in ``rollout`` (``cross_frame=True``): the sampler's
schedule, window 1 equal to the per-frame path, the contract (strict causality), past the
window, the compressive layout, and fewer forward passes per frame."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import compressive_model, spy, squares, tiny_model

from wmkit.ar_world import cross_frame_diagonal_decode, raster_decode
from wmkit.core import ActionSpec
from wmkit.core.testing import WorldModelTests, check_rejects


class TestCrossFrameWindow1(WorldModelTests):
    """Window 1: raster order over the whole rollout, so ``rollout`` equals reset + step."""

    def make_model(self):
        return tiny_model(ActionSpec.discrete(5), decoding="diagonal", window=1, cross_frame=True)

    def make_inputs(self):
        _, frames, actions = squares()
        return frames[:, :2], actions[:, 1:5]  # 4 steps, window of 4 frames: refreshed


class TestCrossFrameDiagonalMultiDiscrete(WorldModelTests):
    """Window 3: strictly causal, deterministic, save/load. ``stochastic = True`` only turns
    off the rollout == reset + step comparison: ``step`` cannot start the next frame early
    (its action is unknown), so the two decoding orders legitimately differ."""

    stochastic = True

    def make_model(self):
        spec = ActionSpec.multi_discrete([5, 3])
        return tiny_model(spec, decoding="diagonal", window=3, top_k=4, top_p=0.9, cross_frame=True)

    def make_inputs(self):
        _, frames, actions = squares()
        extra = torch.arange(4).remainder(3).expand(2, 4)
        return frames[:, :2], torch.stack([actions[:, 1:5], extra], dim=-1)


class TestCrossFrameEmbeddingContinuous(WorldModelTests):
    stochastic = True  # see TestCrossFrameDiagonalMultiDiscrete

    def make_model(self):
        spec = ActionSpec.continuous(2, low=-1.0, high=1.0)
        return tiny_model(spec, action_mode="embedding", decoding="diagonal", cross_frame=True)

    def make_inputs(self):
        _, frames, actions = squares(continuous=True)
        return frames[:, :2], actions[:, 1:5]


class TestCrossFrameCompressive(WorldModelTests):
    stochastic = True  # see TestCrossFrameDiagonalMultiDiscrete

    def make_model(self):
        return compressive_model(
            ActionSpec.discrete(5), decoding="diagonal", window=2, cross_frame=True
        )

    def make_inputs(self):
        _, frames, actions = squares(length=8)
        return frames[:, :2], actions[:, 1:7]  # 6 steps: past the window, re-anchored


def test_sampler_feeds_every_position_last_with_its_real_token_and_every_prelude():
    frames, h, w, v = 3, 3, 4, 7
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(frames, h * w + 1, v, generator=gen)  # logits by (frame, position)
    written: dict[tuple[int, int], int] = {}
    fed_preludes: list[int] = []
    seen: list[set] = []

    def feed(ids, frame, index, preludes):
        for i, f, j in zip(ids[0].tolist(), frame.tolist(), index.tolist()):
            written[f, j] = i
        fed_preludes.extend(preludes)
        seen.append({(f, j) for f, j in zip(frame.tolist(), index.tolist())})
        logits = table[frame, index + 1][None]  # [1, S, V]
        return logits, table[preludes, 0][None]  # the slot predicts token 0

    draws: list[int] = []

    def greedy(lg):
        draws.append(lg.shape[1])  # rows sampled together
        return lg.argmax(-1)

    grid = cross_frame_diagonal_decode(feed, frames, h, w, greedy, batch=1, window=4)
    assert grid.shape == (1, frames, h, w)
    assert len(draws) <= len(seen) and max(draws) == 4  # one call per tick, all rows in flight
    assert set(written) == {(f, j) for f in range(frames) for j in range(h * w)}
    assert [written[f, j] for f in range(frames) for j in range(h * w)] == grid.flatten().tolist()
    # frame 0's prelude once; later frames' early, then again once the previous frame is done
    assert fed_preludes == [0, 1, 1, 2, 2]
    assert any(any(f == 1 for f, _ in s) and any(f == 0 for f, _ in s) for s in seen)  # overlap
    for f in range(frames):  # logits depend on (frame, position) only: raster per frame
        ref = raster_decode(
            lambda ids, index, f=f: table[f, index + 1][None], table[f, 0][None], h, w, greedy
        )
        assert torch.equal(grid[:, f], ref)
    check_rejects(lambda: cross_frame_diagonal_decode(feed, 0, h, w, greedy, 1), match="num_fr")
    check_rejects(
        lambda: cross_frame_diagonal_decode(feed, 1, h, w, greedy, 1, window=0), match="window"
    )


@pytest.mark.parametrize("reference", ["diagonal", "raster"])
def test_window_1_equals_the_per_frame_path_token_for_token_past_the_window(reference):
    eps, frames, actions = squares(length=10)
    common = {"temperature": 0.0, "max_frames": 3, "refresh_keep": 1}  # refreshed 4 times
    cross = tiny_model(eps.action_spec, decoding="diagonal", window=1, cross_frame=True, **common)
    plain = tiny_model(eps.action_spec, decoding=reference, window=1, **common)
    grids_cross, grids_plain = (
        spy(m, "finish_frame", lambda state, grid, action: grid.clone()) for m in (cross, plain)
    )
    a = cross.rollout(frames[:, :2], actions[:, 1:9])
    b = plain.rollout(frames[:, :2], actions[:, 1:9])
    assert len(grids_cross) == len(grids_plain) == 8
    for x, y in zip(grids_cross, grids_plain):
        assert torch.equal(x, y)
    assert torch.equal(a.frames, b.frames)
    assert torch.equal(a.dones, b.dones)
    # the action/slot pass is batched with the frame's last token here: float rounding only
    torch.testing.assert_close(a.rewards, b.rewards, atol=1e-6, rtol=0)


def test_compressive_window_1_equals_the_per_frame_path():
    _, frames, actions = squares(length=9)
    outs = []
    for cross_frame in (False, True):
        model = compressive_model(
            ActionSpec.discrete(5), temperature=0.0, decoding="diagonal", window=1,
            cross_frame=cross_frame,
        )  # fmt: skip
        outs.append(model.rollout(frames[:, :2], actions[:, 1:8]))  # re-anchored twice
    assert torch.equal(outs[0].frames, outs[1].frames)
    torch.testing.assert_close(outs[0].rewards, outs[1].rewards, atol=1e-6, rtol=0)


def test_fewer_forward_passes_per_frame_and_tokens_at_their_own_positions():
    eps, frames, actions = squares(length=10)
    steps, passes = 8, {}
    for cross_frame in (False, True):
        model = tiny_model(
            eps.action_spec, decoding="diagonal", window=4, max_frames=10, temperature=0.0,
            cross_frame=cross_frame,
        )  # fmt: skip
        state = model.reset(frames[:, :2])
        calls = spy(model, "run", lambda state, x, positions: positions.clone())
        if cross_frame:
            model.decoder.decode_chunk(model, state, actions[:, 1 : 1 + steps])
        else:
            for t in range(steps):
                model.step(state, actions[:, 1 + t])
        passes[cross_frame] = len(calls)
        positions = torch.cat(calls)
        end = model.layout.step_start(2 + steps) - model.layout.k - 1
        # every position of the 8 steps written (a placeholder or stale value is rewritten)
        assert set(positions.tolist()) == set(range(int(positions.min()), end))
        lay, first = model.layout, model.layout.step_start(2)
        frames_in_pass = [
            {(q - first) // lay.step_len for q in p.tolist() if (q - first) % lay.step_len < lay.n}
            for p in calls
        ]  # the frames whose grid tokens each pass feeds
        # cross-frame: some passes feed tokens of two frames (the next one started early)
        assert any(len(f) > 1 for f in frames_in_pass) == cross_frame
        assert state.pos == end
    h = w = 4  # 16x16 frames, 4x down
    assert passes[False] == steps * (1 + h + w - 1)  # action/slot pass + anti-diagonals
    assert passes[True] <= steps * h + h + w  # one pass per row in steady state
    assert passes[True] < 0.6 * passes[False]


def test_step_is_unchanged_and_bad_settings_raise():
    eps, frames, actions = squares()
    a = tiny_model(eps.action_spec, decoding="diagonal", temperature=0.0)
    b = tiny_model(eps.action_spec, decoding="diagonal", temperature=0.0, cross_frame=True)
    sa, sb = a.reset(frames[:, :2]), b.reset(frames[:, :2])
    for t in range(3):
        oa, ob = a.step(sa, actions[:, t]), b.step(sb, actions[:, t])
        assert torch.equal(oa.frame, ob.frame) and torch.equal(oa.reward, ob.reward)
    check_rejects(lambda: tiny_model(eps.action_spec, cross_frame=True), match="cross_frame")
