"""The quality options: EDM preconditioning (``objective="edm"``), the residual
parameterization on the clean previous frame (``residual=True``) and clean-history training
frames (``clean_history_prob``): conformance, copy-last at init, causality, training, errors."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model, randomised

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import (
    WorldModelTests,
    check_causality,
    check_loss_decreases,
    moving_squares,
)
from wmkit.diffusion_world import DiffusionWorldModel, edm_scalings, sigma_to_level
from wmkit.diffusion_world.objectives import EDMObjective

SPEC = ActionSpec.discrete(5)


def _data(size: int = 16, length: int = 6, n: int = 2):
    eps = moving_squares(num_episodes=n, length=length, size=size)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


class TestResidualEDM(WorldModelTests):
    def make_model(self):
        return flat_model(
            SPEC, objective="edm", residual=True, num_sampling_steps=2, guidance_scale=1.5,
            context_window=4, sigma_data=0.25,
        )  # fmt: skip

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:5]


class TestResidualDDPM(WorldModelTests):
    def make_model(self):
        return flat_model(
            SPEC, residual=True, prediction_type="sample", num_sampling_steps=2, context_window=3
        )

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :1], actions[:, :4]


@pytest.mark.parametrize(
    ("kwargs", "atol"),
    [
        ({"prediction_type": "sample"}, 0.0),  # x0 = previous frame + 0, exactly
        ({"prediction_type": "v_prediction"}, 1e-3),  # x0 = sqrt(ᾱ) y - sqrt(1 - ᾱ) 0, ᾱ ≈ 0
        ({"objective": "edm", "sigma_data": 0.25}, 0.08),  # D = c_skip y, c_skip σ_max ≈ 0.01
    ],
)
def test_untrained_residual_model_predicts_copy_last_frame(kwargs, atol):
    frames, actions = _data()
    model = flat_model(SPEC, residual=True, num_sampling_steps=1, **kwargs).eval()
    torch.manual_seed(0)
    out = model.rollout(frames[:, :3], actions[:, 2:5]).frames
    previous = torch.cat([frames[:, 2:3], out[:, :-1]], dim=1)  # each step's last frame
    assert (out - previous).abs().max() <= atol
    last = frames[:, 2:3].expand_as(out)
    plain = flat_model(SPEC, num_sampling_steps=1, **kwargs).eval()
    assert (plain.rollout(frames[:, :3], actions[:, 2:5]).frames - last).abs().max() > 0.3


@pytest.mark.parametrize("objective", ["ddpm", "edm"])
def test_residual_denoiser_is_strictly_causal_with_its_clean_bases(objective):
    model = randomised(flat_model(SPEC, objective=objective, residual=True)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 16, 16, generator=g)
    levels = torch.tensor([[0, 0, 300, 500, 900]] * 2)
    if objective == "edm":
        levels = levels.float() / 100
    cond = torch.randn(2, 5, model.network.cond_dim, generator=g)
    with torch.no_grad():
        # the clean frames feed both the noisy inputs and (shifted by one) the bases
        check_causality(
            lambda v: model(v, levels, cond, base=model.denoiser.bases(v)), x, what="frames"
        )
        check_causality(
            lambda s: model(x, s, cond, base=model.denoiser.bases(x)), levels, what="levels"
        )


def test_edm_preconditioning_keeps_clean_frames_and_levels_reach_the_network():
    sigma = torch.tensor([0.0, 0.5, 80.0])
    c_skip, c_out, c_in = edm_scalings(sigma, 0.5)
    assert torch.allclose(c_skip, torch.tensor([1.0, 0.5, 0.25 / 6400.25]))
    assert c_out[0] == 0 and torch.allclose(c_in[1], torch.tensor(0.5**-0.5))
    levels = sigma_to_level(torch.tensor([0.0, 0.002, 1.0, 80.0, 500.0]))
    assert levels[0] == levels[1] == 0 and levels[3] == levels[4] == 999
    assert 0 < levels[2] < 999

    model = randomised(flat_model(SPEC, objective="edm")).eval()
    x = torch.randn(1, 3, 3, 16, 16)
    cond = model.frame_conditions(None, 3, 1)
    with torch.no_grad():
        d = model(x, torch.tensor([[0.0, 1.0, 3.0]]), cond)
        d2 = model(x, torch.tensor([[0.0, 1.0, 0.3]]), cond)
    assert torch.equal(d[:, 0], x[:, 0])  # σ = 0: the denoised frame is the frame itself
    assert torch.equal(d[:, :2], d2[:, :2]) and not torch.allclose(d[:, 2], d2[:, 2])


def test_clean_history_frames_get_level_zero_and_no_loss():
    frames, actions = _data(n=4)
    model = flat_model(SPEC, objective="edm", residual=True, clean_history_prob=0.5)
    seen = {}
    model.network.register_forward_pre_hook(lambda m, a: seen.update(x=a[0], lv=a[1]))
    torch.manual_seed(0)
    out = model.loss(frames, actions)
    sig = out.timesteps
    assert (sig[:, 0] == 0).all()  # residual: the first frame is context
    clean = sig == 0
    assert clean[:, 1:].any() and (~clean).any()
    assert (seen["lv"][clean] == 0).all() and (seen["lv"][~clean] > 0).all()
    assert seen["x"].shape[2] == 6  # noisy change + the clean previous frame
    assert torch.equal(seen["x"][:, 1:, 3:], model.encode(frames)[:, :-1])
    assert flat_model(SPEC, objective="edm").denoiser.clean_history_prob == 0.5
    assert flat_model(SPEC).denoiser.clean_history_prob == 0.0


@pytest.mark.parametrize("objective", ["ddpm", "edm"])
def test_residual_loss_decreases_on_a_real_batch(objective):
    torch.manual_seed(0)
    frames, actions = _data(n=8)
    model = flat_model(SPEC, objective=objective, residual=True, sigma_data=0.25)
    check_loss_decreases(model, lambda: model.loss(frames, actions).loss, steps=25)


def test_save_load_keeps_the_options(tmp_path):
    frames, actions = _data()
    model = randomised(
        flat_model(SPEC, objective="edm", residual=True, sigma_data=0.3, sigma_max=4.0)
    ).eval()
    model.save_pretrained(tmp_path / "m")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "m").eval()
    objective = again.denoiser.objective
    assert (type(objective), again.residual, objective.sigma_data) == (EDMObjective, True, 0.3)
    assert again.sampler.scheduler.config.sigma_max == 4.0
    outs = []
    for m in (model, again):
        torch.manual_seed(0)
        outs.append(m.rollout(frames[:, :2], actions[:, 1:3]).frames)
    assert torch.equal(outs[0], outs[1])


def test_quality_options_fail_clearly():
    with pytest.raises(ValueError, match="objective"):
        flat_model(SPEC, objective="score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="residual=True needs network='dit'"):
        flat_model(SPEC, network="svd_unet", residual=True, image_size=8)
    with pytest.raises(ValueError, match="clean_history_prob"):
        flat_model(SPEC, clean_history_prob=1.0)
    with pytest.raises(ValueError, match="history_noise_level"):
        flat_model(SPEC, objective="edm", history_noise_level=10)
    with pytest.raises(ValueError, match="sigma_min"):
        flat_model(SPEC, objective="edm", sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="sigma_data"):
        flat_model(SPEC, sigma_data=0.0)
    model = flat_model(SPEC, residual=True)
    with pytest.raises(ValueError, match="base"):
        model(torch.zeros(1, 2, 3, 16, 16), torch.zeros(1, 2, dtype=torch.long), None)
