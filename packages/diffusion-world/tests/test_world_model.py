"""DiffusionWorldModel: WorldModel conformance (pixels, latents, causal SVD UNet),
causal action guidance, Diffusion Forcing training, sliding windows, errors."""

import pytest
import torch

from wmkit.core import ActionSpec, WorldState, to_float_video
from wmkit.core.testing import ToyTokenizer, WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusionWorldModel, guided_prediction

SPEC = ActionSpec.discrete(5)


def _data(size: int = 16, length: int = 6, n: int = 2):
    eps = moving_squares(num_episodes=n, length=length, size=size)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


class TestPixelDiT(WorldModelTests):
    def make_model(self):
        return DiffusionWorldModel(SPEC, num_sampling_steps=2, guidance_scale=1.5, context_window=4)

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:5]


class TestLatentDiT(WorldModelTests):
    def make_model(self):
        tok = ToyTokenizer(patch=4, channels=3, kind="continuous")
        tok.save_pretrained(self.tmp / "tok")
        return DiffusionWorldModel(
            SPEC,
            image_size=4,
            tokenizer=str(self.tmp / "tok"),
            num_sampling_steps=1,
            network_kwargs={"patch_size": 1},
            sampler="euler",
        )

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:4]

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp = tmp_path


class TestAnchoredLatentDiT(TestLatentDiT):
    def make_model(self):
        return _anchored_model(self.tmp, anchored=True)


def _anchored_model(tmp, anchored: bool) -> DiffusionWorldModel:
    tok = ToyTokenizer(patch=4, channels=3, kind="continuous")
    tok.save_pretrained(tmp / "tok")
    return DiffusionWorldModel(
        SPEC, image_size=4, tokenizer=str(tmp / "tok"), objective="edm", residual=True,
        sigma_data=0.1, num_sampling_steps=1, network_kwargs={"patch_size": 1},
        anchored_decoding=anchored,
    ).eval()  # fmt: skip


def test_anchored_decoding_cancels_the_tokenizers_error(tmp_path):
    # an untrained residual model keeps the latent: anchored, it is copy-last-frame exactly
    # (up to the sampler's c_skip · noise); plain decoding gives the tokenizer's blurry
    # reconstruction of the last frame
    torch.manual_seed(0)
    context = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # not patch-aligned: the toy tokenizer blurs
    actions = torch.randint(0, 5, (2, 4))
    last = context[:, -1:].expand(-1, 4, -1, -1, -1)
    anchored = _anchored_model(tmp_path, anchored=True).rollout(context, actions).frames
    plain = _anchored_model(tmp_path, anchored=False).rollout(context, actions).frames
    assert (anchored - last).abs().mean() < 0.005
    assert (plain - last).abs().mean() > 0.2
    # a predicted latent change reaches the frame as its decoded change: x_a + D(z_a + δ) - D(z_a),
    # which for the toy tokenizer (a linear upsampler) is x_a + upsample(δ)
    model = _anchored_model(tmp_path, anchored=True)
    delta = torch.randn(2, 3, 4, 4) * 0.1
    model.sampler.sample = lambda *args, **kwargs: delta
    frame = model.step(model.reset(context), actions[:, 0]).frame
    expected = context[:, -1] + delta.repeat_interleave(4, -1).repeat_interleave(4, -2)
    torch.testing.assert_close(frame, expected.clamp(-1, 1))


class TestCausalSVDUNet(WorldModelTests):
    def make_model(self):
        return DiffusionWorldModel(
            SPEC, network="svd_unet", image_size=8, num_sampling_steps=1, context_window=3
        )

    def make_inputs(self):
        frames, actions = _data(size=8, length=4, n=1)
        return frames[:, :1], actions[:, :3]


def test_rollout_equals_reset_plus_step_under_a_seed():
    model = DiffusionWorldModel(SPEC, num_sampling_steps=2, sampler="ddpm").eval()
    frames, actions = _data()
    torch.manual_seed(5)
    rolled = model.rollout(frames[:, :2], actions[:, 1:4]).frames
    torch.manual_seed(5)
    state = model.reset(frames[:, :2])
    stepped = []
    for t in range(3):
        out = model.step(state, actions[:, 1 + t])
        stepped.append(out.frame)
        state = out.state
    assert torch.equal(rolled, torch.stack(stepped, 1))


def test_guidance_scale_zero_equals_the_unconditional_path():
    torch.manual_seed(0)
    model = DiffusionWorldModel(SPEC).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)
    x = torch.randn(2, 3, 3, 16, 16)
    ts = torch.tensor([[0, 0, 500]] * 2)
    cond = model.frame_conditions(torch.tensor([[1, 2, 3]] * 2), 3, 2)
    uncond = cond.clone()
    uncond[:, -1] = model.action_embed.null
    with torch.no_grad():
        guided0 = guided_prediction(model, x, ts, cond, uncond, 0.0)
        plain_uncond = model(x, ts, uncond)[:, -1]
        guided1 = guided_prediction(model, x, ts, cond, uncond, 1.0)
        guided3 = guided_prediction(model, x, ts, cond, uncond, 3.0)
    assert torch.allclose(guided0, plain_uncond, atol=1e-6)
    assert torch.allclose(guided1, model(x, ts, cond)[:, -1], atol=1e-6)
    assert not torch.allclose(guided3, guided1, atol=1e-4)

    # end to end: at scale 0 the current action no longer changes the next frame
    frames, _ = _data()
    model.sampler.guidance_scale = 0.0
    outs = []
    for a in (1, 4):
        torch.manual_seed(0)
        outs.append(model.rollout(frames[:, :2], torch.full((2, 1), a)).frames)
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    model.sampler.guidance_scale = 2.0
    outs = []
    for a in (1, 4):
        torch.manual_seed(0)
        outs.append(model.rollout(frames[:, :2], torch.full((2, 1), a)).frames)
    assert not torch.allclose(outs[0], outs[1], atol=1e-4)


def test_diffusion_forcing_loss_decreases_on_a_real_batch():
    torch.manual_seed(0)
    frames, actions = _data(n=8)
    model = DiffusionWorldModel(SPEC, prediction_type="epsilon").train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def fixed_loss():
        torch.manual_seed(123)
        with torch.no_grad():
            return model.loss(frames, actions).loss.item()

    before = fixed_loss()
    for _ in range(40):
        loss = model.loss(frames, actions).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    del gen
    assert fixed_loss() < 0.7 * before


def test_loss_uses_independent_per_frame_noise_levels_and_action_dropout():
    torch.manual_seed(0)
    frames, actions = _data(n=4)
    model = DiffusionWorldModel(SPEC, action_dropout=0.5).train()
    seen = {}

    def hook(module, args):
        seen["timesteps"], seen["cond"] = args[1], args[2]

    model.network.register_forward_pre_hook(hook)
    out = model.loss(frames, actions)
    ts = seen["timesteps"]
    assert ts.shape == (4, 6) and torch.equal(ts, out.timesteps)
    assert (ts != ts[:, :1]).any(dim=1).all()  # levels differ within each clip
    is_null = (seen["cond"] == model.action_embed.null).all(-1)
    assert is_null[:, 0].all()  # the first frame has no action
    assert is_null[:, 1:].any() and not is_null[:, 1:].all()  # some actions dropped per frame


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_prediction_types_and_samplers_run(prediction_type):
    frames, actions = _data()
    for sampler in ("ddpm", "ddim", "euler", "dpm"):
        model = DiffusionWorldModel(
            SPEC, prediction_type=prediction_type, sampler=sampler, num_sampling_steps=2
        ).eval()
        assert model.loss(frames, actions).loss.isfinite()
        out = model.rollout(frames[:, :1], actions[:, :2]).frames
        assert out.shape == (2, 2, 3, 16, 16) and out.abs().max() <= 1


def test_sliding_window_rolls_out_past_the_training_length():
    model = DiffusionWorldModel(SPEC, context_window=3, num_sampling_steps=1).eval()
    frames, actions = _data()
    state = model.reset(frames[:, :2], actions[:, :1])
    assert isinstance(state, WorldState) and state.extra["x"].shape[1] == 2
    long_actions = torch.randint(0, 5, (2, 10))
    for t in range(10):
        out = model.step(state, long_actions[:, t])
        state = out.state
        assert state.extra["x"].shape[1] == 2 and state.frames.shape[1] == 2
    assert state.t == 12


def test_bad_arguments_fail_clearly(tmp_path):
    frames, actions = _data()
    with pytest.raises(ValueError, match="network"):
        DiffusionWorldModel(SPEC, network="rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        DiffusionWorldModel(SPEC, size="huge")
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusionWorldModel(SPEC, prediction_type="score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sampler"):
        DiffusionWorldModel(SPEC, sampler="heun")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no diffusers UNet directory"):
        DiffusionWorldModel(SPEC, network="svd_unet", pretrained_network=str(tmp_path / "x"))
    model = DiffusionWorldModel(SPEC)
    with pytest.raises(ValueError, match="continuous"):
        model.set_tokenizer(ToyTokenizer(kind="discrete"))
    with pytest.raises(ValueError, match="image_size"):
        model.loss(torch.zeros(1, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="actions"):
        model.loss(frames, actions[:, :2])
    with pytest.raises(TypeError, match="frames"):
        model.loss((frames * 100).to(torch.uint8))
