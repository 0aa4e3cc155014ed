"""The network: conformance (determinism, causality of the window variant, save/load) for
every variant, and clear errors for bad input."""

import pytest
import torch

from wmkit.core import to_float_video
from wmkit.core.testing import LatentActionModelTests, check_rejects, moving_squares
from wmkit.latent_action import LatentActionAutoencoder


def _frames(t: int = 6) -> torch.Tensor:
    return to_float_video(moving_squares(2, t, 16, seed=1).frames)  # [2, T, 3, 16, 16]


class TestFSQ(LatentActionModelTests):
    def make_model(self):
        return LatentActionAutoencoder.from_size("tiny")

    def make_inputs(self):
        return _frames()


class TestVQWindow(LatentActionModelTests):
    """The causal window variant: latent t depends on frames <= t + 1 only."""

    def make_model(self):
        return LatentActionAutoencoder.from_size("tiny", quantizer="vq", window=3)

    def make_inputs(self):
        return _frames(7)


class TestContinuous(LatentActionModelTests):
    def make_model(self):
        return LatentActionAutoencoder.from_size("tiny", quantizer="none", window=2)

    def make_inputs(self):
        return _frames()


def test_specs():
    assert LatentActionAutoencoder.from_size("tiny").latent_action_spec.nvec == (8,) * 4
    vq = LatentActionAutoencoder.from_size("tiny", quantizer="vq", codebook_size=16)
    assert vq.latent_action_spec.nvec == (16,) * 4
    cont = LatentActionAutoencoder.from_size("tiny", quantizer="none", num_tokens=2)
    assert cont.latent_action_spec.kind == "continuous"
    assert cont.latent_action_spec.action_shape == (2, 8)


def test_window_sees_past_frames_and_blind_ignores_next():
    frames = _frames()
    torch.manual_seed(0)
    model = LatentActionAutoencoder.from_size("tiny", quantizer="none", window=2).eval()
    changed = frames.clone()
    changed[:, 0] = -frames[:, 0]
    base = model.encode(frames)
    # latent 1 (frames 1 -> 2) sees frame 0 through the window; latent 2 does not
    assert not torch.allclose(model.encode(changed)[:, 1], base[:, 1])
    assert torch.equal(model.encode(changed)[:, 2:], base[:, 2:])
    torch.manual_seed(0)
    blind = LatentActionAutoencoder.from_size("tiny", quantizer="none", blind=True).eval()
    nxt = frames.clone()
    nxt[:, -1] = -frames[:, -1]
    assert torch.equal(blind.encode(nxt), blind.encode(frames))


def test_infer_does_not_update_vq_codebook():
    model = LatentActionAutoencoder.from_size("tiny", quantizer="vq").train()
    frames = _frames()
    model(frames)  # k-means init
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.infer(frames)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bad_inputs_are_rejected():
    model = LatentActionAutoencoder.from_size("tiny").eval()
    frames = _frames()
    check_rejects(lambda: model.infer(frames[:, :1]), match="frames")  # one frame
    check_rejects(lambda: model.infer(frames[..., :10, :10]), match="multiples")
    check_rejects(lambda: model.infer(frames[:, :, :1]), match="channels")
    check_rejects(lambda: model.infer(((frames + 1) * 127).to(torch.uint8)), match="frames")
    check_rejects(lambda: model.infer(frames * 3), match="[-1, 1]")
    latent = model.infer(frames)[:, 0]
    check_rejects(lambda: model.apply(frames[:, 0], latent.float()), match="latent_action")
    check_rejects(lambda: model.apply(frames[:, 0], latent + 8), match="latent_action")
    check_rejects(lambda: model.apply(frames[:1, 0], latent), match="batch")
    check_rejects(lambda: model.apply(frames[:, 0, :1], latent), match="frame")
    with pytest.raises(ValueError, match="size"):
        LatentActionAutoencoder.from_size("huge")
    with pytest.raises(ValueError, match="quantizer"):
        LatentActionAutoencoder(quantizer="lfq")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fsq_levels"):
        LatentActionAutoencoder(fsq_levels=(2,))
    with pytest.raises(ValueError, match="window"):
        LatentActionAutoencoder(window=0)


def test_apply_matches_forward_prediction():
    model = LatentActionAutoencoder.from_size("tiny").eval()
    frames = _frames()
    out = model(frames)
    assert torch.equal(out.latent_actions, model.infer(frames))
    again = model.apply(frames[:, 2], out.latent_actions[:, 2])
    torch.testing.assert_close(again, out.predicted[:, 2], atol=1e-6, rtol=0)
