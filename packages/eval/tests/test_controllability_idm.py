"""ΔPSNR is ~0 for models that ignore actions and clearly positive for an oracle; the IDM
learns actions from real frames and scores generated ones."""

import pytest
import torch

from wmkit.core.testing import ToyWorldModel, check_world_model
from wmkit.eval.baselines import CopyLastFrame
from wmkit.eval.controllability import delta_psnr, other_actions
from wmkit.eval.idm import InverseDynamicsModel, idm_accuracy, train_idm


def _split(frames, actions, t0=2, h=6):
    return frames[:, :t0], actions[:, t0 - 1 : t0 - 1 + h], frames[:, t0 : t0 + h]


def test_delta_psnr_zero_when_actions_are_ignored(squares):
    frames, actions, spec = squares
    ctx, acts, target = _split(frames, actions)
    for model in (CopyLastFrame(spec), ToyWorldModel(spec)):  # untrained toy: zero output layer
        result = delta_psnr(model, ctx, acts, target, mode="random")
        assert result.delta.shape == (12, 6)
        assert result.mean_delta == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("mode", ["random", "shuffle"])
def test_delta_psnr_clearly_positive_for_an_oracle(squares, oracle, mode):
    frames, actions, spec = squares
    ctx, acts, target = _split(frames, actions)
    result = delta_psnr(oracle(spec), ctx, acts, target, mode=mode)
    assert result.psnr_true.mean() == 100.0  # the oracle is exact
    assert result.mean_delta > 10.0


def test_other_actions_and_errors(squares):
    _, actions, spec = squares
    model = CopyLastFrame(spec)
    assert torch.equal(other_actions(model, actions, "shuffle"), actions.roll(1, 0))
    rnd = other_actions(model, actions, "random", torch.Generator().manual_seed(0))
    spec.validate(rnd)
    with pytest.raises(ValueError, match="at least 2 clips"):
        other_actions(model, actions[:1], "shuffle")
    with pytest.raises(ValueError, match="mode must be"):
        other_actions(model, actions, "reverse")  # type: ignore[arg-type]


def test_copy_last_frame_is_a_conformant_world_model(squares):
    frames, actions, spec = squares
    check_world_model(CopyLastFrame(spec), frames[:2, :2], actions[:2, :3], save_load=False)


def test_idm_learns_actions_and_scores_generated_video(squares, oracle, tmp_path):
    frames, actions, spec = squares
    torch.manual_seed(0)
    idm = InverseDynamicsModel(spec, hidden=16, depth=2)
    losses = train_idm(idm, frames[:8], actions[:8], steps=80, batch_size=32, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    # held-out episodes: real frames vs an exact oracle vs copy-last-frame
    ctx, acts, target = _split(frames[8:], actions[8:])
    real = idm_accuracy(idm, torch.cat([ctx[:, -1:], target], 1), acts).mean()
    oracle_video = oracle(spec).rollout(ctx, acts).frames
    exact = idm_accuracy(idm, torch.cat([ctx[:, -1:], oracle_video], 1), acts).mean()
    copy = CopyLastFrame(spec).rollout(ctx, acts).frames
    frozen = idm_accuracy(idm, torch.cat([ctx[:, -1:], copy], 1), acts).mean()
    assert real > 0.6 and exact == real and frozen < real - 0.2
    idm.save_pretrained(tmp_path / "idm")
    again = InverseDynamicsModel.from_pretrained(tmp_path / "idm")
    torch.testing.assert_close(again.predict_tokens(target), idm.predict_tokens(target))
    with pytest.raises(ValueError, match=r"actions must be \[B, T - 1, ...\]"):
        idm_accuracy(idm, target, acts)
