"""The compressive layout (iVideoGPT): context frames with N tokens, future frames with n,
decoded against the observed context; contract, cache vs teacher forcing, action causality,
re-anchoring past the window, training."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import compressive_model, squares

from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.core import ActionSpec, Latents
from wmkit.core.testing import WorldModelTests, check_save_load
from wmkit.core.testing.toy_lit import MovingSquaresDataModule


class TestCompressiveDiagonal(WorldModelTests):
    def make_model(self):
        return compressive_model(ActionSpec.discrete(5), decoding="diagonal", window=2)

    def make_inputs(self):
        _, frames, actions = squares(length=8)
        return frames[:, :2], actions[:, 1:7]  # 6 steps: past the window, re-anchored


def test_layout_counts_context_and_future_tokens():
    model = compressive_model(ActionSpec.discrete(5))
    lay = model.layout
    assert (lay.t0, lay.nc, lay.n, lay.k) == (2, 16, 4, 1)
    assert lay.context_vocab_size == 8 and lay.vocab_size == 8 and lay.future_offset == 8
    # 2 context steps of 16 + 1 + 1, then future steps of 4 + 1 + 1
    assert [lay.step_start(t) for t in range(5)] == [0, 18, 36, 42, 48]
    assert model.frame_head.out_features == 8


def _rollout_tokens(model, frames, actions, steps):
    state = model.reset(frames[:, :2], actions[:, :1])
    for i in range(steps):
        model.step(state, actions[:, 1 + i])
    return state


def test_greedy_cached_decoding_equals_teacher_forced_argmax():
    _, frames, actions = squares(length=6)
    for decoding in ("raster", "diagonal"):
        model = compressive_model(
            ActionSpec.discrete(5), temperature=0.0, decoding=decoding, window=1
        )
        state = _rollout_tokens(model, frames, actions, 3)  # fills the 5-frame window
        ctx, fut = torch.stack(state.tokens[:2], 1), torch.stack(state.tokens[2:], 1)
        with torch.no_grad():
            out = model(ctx, actions[:, :5], None, fut)
        assert out.frame_logits.shape == (2, 3, 4, 8)
        assert torch.equal(out.frame_logits.argmax(-1), fut.flatten(2))


def test_diagonal_window_one_equals_raster():
    _, frames, actions = squares(length=8)
    outs = []
    for decoding in ("raster", "diagonal"):
        model = compressive_model(ActionSpec.discrete(5), temperature=0.0, decoding=decoding)
        model.decoder.window = 1
        outs.append(model.rollout(frames[:, :2], actions[:, 1:7]).frames)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_action_changes_next_frame_logits_only():
    _, frames, actions = squares(length=5)
    model = compressive_model(ActionSpec.discrete(5))
    ctx, fut = model.encode_clip(frames)
    assert ctx.shape == (2, 2, 4, 4) and fut.shape == (2, 3, 2, 2)
    changed = actions.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 5  # acts on frame 4 = future frame 2
    with torch.no_grad():
        a, b = model(ctx, actions, None, fut), model(ctx, changed, None, fut)
    assert torch.equal(a.frame_logits[:, :2], b.frame_logits[:, :2])
    assert not torch.allclose(a.frame_logits[:, 2], b.frame_logits[:, 2])


def test_future_frames_are_decoded_against_the_observed_context():
    _, frames, actions = squares(length=4)
    model = compressive_model(ActionSpec.discrete(5), temperature=0.0)
    state = model.reset(frames[:, :2], actions[:, :1])
    assert torch.equal(state.context_frames, frames[:, :2])
    frame = model.step(state, actions[:, 1]).frame
    grid = state.tokens[-1]
    latents = Latents(
        values=torch.stack(state.tokens[:2], 1), kind="discrete", future=grid[:, None],
        context_indices=(0, 1), context_frames=frames[:, :2],
    )  # fmt: skip
    expected = model.tokenizer.decode(latents)[:, -1]
    torch.testing.assert_close(frame, expected)


def test_bad_inputs_raise_clear_errors():
    _, frames, actions = squares(length=4)
    model = compressive_model(ActionSpec.discrete(5))
    with pytest.raises(ValueError, match="at least context_frames = 2"):
        model.reset(frames[:, :1])
    with pytest.raises(ValueError, match="per-frame tokenizer"):
        model.reset(frames[:, :2], goal_frame=frames[:, 0])
    ctx, _ = model.encode_clip(frames)
    with pytest.raises(ValueError, match="needs tokens"):
        model(ctx, actions)
    with pytest.raises(ValueError, match="context_frames must be in"):
        compressive_model(ActionSpec.discrete(5), context_frames=5)


def test_training_lowers_future_token_loss_and_round_trips(tmp_path):
    data = MovingSquaresDataModule(num_episodes=16, length=5, size=16, batch_size=16)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    module = ARWorldModelModule(compressive_model(ActionSpec.discrete(5)), action_dropout=0.0)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    first = module.losses(batch)["token_ce"].item()
    module.train()
    for _ in range(40):
        loss = module.losses(batch, train=True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert module.losses(batch)["token_ce"].item() < 0.7 * first
    _, frames, actions = squares(length=4)

    def teacher_forced(m):
        ctx, fut = m.encode_clip(frames)
        return m(ctx, actions, None, fut).frame_logits

    check_save_load(module.model.eval(), forward=teacher_forced)
