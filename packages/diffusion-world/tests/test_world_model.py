"""DiffusionWorldModel: WorldModel conformance (pixels, latents, causal SVD UNet),
causal action guidance, Diffusion Forcing training, sliding windows, errors, saving with the
tokenizer."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from wmkit.core import ActionSpec, WorldState, load_pretrained, to_float_video
from wmkit.core.testing import (
    ToyTokenizer,
    WorldModelTests,
    check_loss_decreases,
    check_save_load,
    moving_squares,
)
from wmkit.diffusion_world import DiffusionWorldModel, guided_prediction

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

SPEC = ActionSpec.discrete(5)


def _data(size: int = 16, length: int = 6, n: int = 2):
    eps = moving_squares(num_episodes=n, length=length, size=size)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


class TestPixelDiT(WorldModelTests):
    def make_model(self):
        return flat_model(SPEC, num_sampling_steps=2, guidance_scale=1.5, context_window=4)

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:5]


class TestLatentDiT(WorldModelTests):
    def make_model(self):
        tok = ToyTokenizer(patch=4, channels=3, kind="continuous")
        tok.save_pretrained(self.tmp / "tok")
        return flat_model(
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
    return flat_model(
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
        return flat_model(
            SPEC, network="svd_unet", image_size=8, num_sampling_steps=1, context_window=3
        )

    def make_inputs(self):
        frames, actions = _data(size=8, length=4, n=1)
        return frames[:, :1], actions[:, :3]


def test_rollout_equals_reset_plus_step_under_a_seed():
    model = flat_model(SPEC, num_sampling_steps=2, sampler="ddpm").eval()
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
    model = flat_model(SPEC).eval()
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
    model = flat_model(SPEC, prediction_type="epsilon").train()
    check_loss_decreases(model, lambda: model.loss(frames, actions).loss, steps=40, factor=0.7)


def test_loss_uses_independent_per_frame_noise_levels_and_action_dropout():
    torch.manual_seed(0)
    frames, actions = _data(n=4)
    model = flat_model(SPEC, action_dropout=0.5).train()
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
        model = flat_model(
            SPEC, prediction_type=prediction_type, sampler=sampler, num_sampling_steps=2
        ).eval()
        assert model.loss(frames, actions).loss.isfinite()
        out = model.rollout(frames[:, :1], actions[:, :2]).frames
        assert out.shape == (2, 2, 3, 16, 16) and out.abs().max() <= 1


def test_sliding_window_rolls_out_past_the_training_length():
    model = flat_model(SPEC, context_window=3, num_sampling_steps=1).eval()
    frames, actions = _data()
    state = model.reset(frames[:, :2], actions[:, :1])
    assert isinstance(state, WorldState) and state.x.shape[1] == 2
    long_actions = torch.randint(0, 5, (2, 10))
    for t in range(10):
        out = model.step(state, long_actions[:, t])
        state = out.state
        assert state.x.shape[1] == 2 and state.frames.shape[1] == 2
    assert state.t == 12


def test_bad_arguments_fail_clearly(tmp_path):
    frames, actions = _data()
    with pytest.raises(ValueError, match="network"):
        flat_model(SPEC, network="rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        flat_model(SPEC, size="huge")
    with pytest.raises(ValueError, match="prediction_type"):
        flat_model(SPEC, prediction_type="score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sampler"):
        flat_model(SPEC, sampler="heun")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no diffusers network directory"):
        flat_model(SPEC, network="svd_unet", pretrained_network=str(tmp_path / "x"))
    model = flat_model(SPEC)
    with pytest.raises(ValueError, match="continuous"):
        model.set_tokenizer(ToyTokenizer(kind="discrete"))
    with pytest.raises(ValueError, match="image_size"):
        model.loss(torch.zeros(1, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="actions"):
        model.loss(frames, actions[:, :2])
    with pytest.raises(TypeError, match="frames"):
        model.loss((frames * 100).to(torch.uint8))


# ------------------------------------------------------------------ saving with the tokenizer
def _random_latent_model(tokenizer: str | None = None, **kwargs) -> DiffusionWorldModel:
    """A latent DiT (ddim, v-prediction) whose zero-initialised weights are randomised, so its
    rollouts depend on every weight (and on clipping)."""
    model = flat_model(
        SPEC, image_size=4, tokenizer=tokenizer, num_sampling_steps=2,
        network_kwargs={"patch_size": 1}, **kwargs,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)
    return model.eval()


def _rollout(model: DiffusionWorldModel) -> torch.Tensor:
    frames, actions = _data()
    torch.manual_seed(0)
    return model.rollout(frames[:, :2], actions[:, 1:4]).frames


def test_saved_world_model_carries_its_tokenizer_to_any_directory(tmp_path, monkeypatch):
    # as the quickstart does: the tokenizer by a path relative to the working directory
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    ToyTokenizer(patch=4, levels=7, channels=3, kind="continuous").save_pretrained("tok")
    model = _random_latent_model("tok", latent_scale=3.0, anchored_decoding=True)
    expected = _rollout(model)
    model.save_pretrained("world")
    config = json.loads(Path("world/config.json").read_text())
    assert config["tokenizer"] == "./tokenizer"
    assert (config["latent_scale"], config["anchored_decoding"]) == (3.0, True)
    assert Path("world/tokenizer/config.json").is_file()

    # copy the world directory elsewhere, delete the original tokenizer, load from another cwd
    shutil.copytree("world", tmp_path / "copied" / "world")
    shutil.rmtree(tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for path in (tmp_path / "copied" / "world", Path("../copied/world")):
        again = load_pretrained(path)
        assert isinstance(again, DiffusionWorldModel)
        assert isinstance(again.tokenizer, ToyTokenizer) and again.tokenizer.levels == 7
        assert (again.latent_scale, again.anchored_decoding) == (3.0, True)
        assert torch.equal(_rollout(again), expected)
    # saving a loaded model again (over its own directory) keeps it loadable
    again.save_pretrained(tmp_path / "copied" / "world")
    assert torch.equal(_rollout(load_pretrained(tmp_path / "copied" / "world")), expected)


def test_a_tokenizer_attached_with_set_tokenizer_is_saved_too(tmp_path):
    model = _random_latent_model(latent_scale=3.0)  # pixels until the tokenizer is attached
    assert model.sampler.scheduler.config.clip_sample  # pixels are clipped to [-1, 1] ...
    model.set_tokenizer(ToyTokenizer(patch=4, channels=3, kind="continuous"))
    assert not model.sampler.scheduler.config.clip_sample  # ... latents (here up to 3) not
    assert not model.denoiser.objective.scheduler.config.clip_sample
    again = check_save_load(model, _rollout, directory=tmp_path / "m")
    assert isinstance(again.tokenizer, ToyTokenizer) and again.latent_scale == 3.0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["tokenizer"] == "./tokenizer"
    # detaching it saves a pixel model, as one built without a tokenizer
    again.set_tokenizer(None)
    assert again.sampler.scheduler.config.clip_sample
    for name, m in (("detached", again), ("pixels", flat_model(SPEC))):
        m.save_pretrained(tmp_path / name)
        assert json.loads((tmp_path / name / "config.json").read_text())["tokenizer"] is None
        assert not (tmp_path / name / "tokenizer").exists()
        assert DiffusionWorldModel.from_pretrained(tmp_path / name).tokenizer is None


class _Unsaveable:
    """A continuous ``Tokenizer`` with no ``save_pretrained``."""

    kind, vocab_size, latent_channels = "continuous", None, 3
    spatial_compression, temporal_compression = 4, 1

    def __init__(self) -> None:
        self._inner = ToyTokenizer(patch=4, channels=3, kind="continuous")

    def tokens_shape(self, num_frames, height, width):
        return self._inner.tokens_shape(num_frames, height, width)

    def encode(self, video):
        return self._inner.encode(video)

    def decode(self, latents):
        return self._inner.decode(latents)


def test_a_tokenizer_without_save_pretrained_cannot_be_saved(tmp_path):
    model = flat_model(SPEC, image_size=4, network_kwargs={"patch_size": 1})
    model.set_tokenizer(_Unsaveable())
    with pytest.raises(TypeError, match="_Unsaveable has no save_pretrained"):
        model.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "config.json").exists()


def test_older_configs_with_their_tokenizer_paths_still_load(tmp_path, monkeypatch):
    ToyTokenizer(patch=4, levels=5, kind="continuous").save_pretrained(tmp_path / "tok")
    model = _random_latent_model(str(tmp_path / "tok"))
    expected = _rollout(model)
    model.save_pretrained(tmp_path / "world")
    shutil.rmtree(tmp_path / "world" / "tokenizer")  # as saved before: no tokenizer/ inside
    config_path = tmp_path / "world" / "config.json"
    config = json.loads(config_path.read_text())
    monkeypatch.chdir(tmp_path)
    # an absolute path, one relative to the working directory, and a "./" one that is too
    for recorded in (str(tmp_path / "tok"), "tok", "./tok"):
        config_path.write_text(json.dumps({**config, "tokenizer": recorded}))
        again = DiffusionWorldModel.from_pretrained(tmp_path / "world")
        assert again.tokenizer.levels == 5 and torch.equal(_rollout(again), expected)
    # tokenizer= still overrides what config.json records
    ToyTokenizer(patch=4, levels=9, kind="continuous").save_pretrained(tmp_path / "other")
    other = str(tmp_path / "other")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "world", tokenizer=other)
    assert again.tokenizer.levels == 9
    # a "./tokenizer" that neither directory holds names the model's directory
    config_path.write_text(json.dumps({**config, "tokenizer": "./tokenizer"}))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "world" / "tokenizer"))):
        DiffusionWorldModel.from_pretrained(tmp_path / "world")


def test_moving_the_model_moves_its_tokenizer():
    """The frozen tokenizer is not a submodule; ``.to()`` (and so Lightning's device placement)
    must move it with the network, or encoding on a GPU fails on a device mismatch."""
    tok = ToyTokenizer(patch=4, channels=3, kind="continuous")
    model = flat_model(SPEC, image_size=4, network_kwargs={"patch_size": 1})
    model.set_tokenizer(tok).to("meta")  # a device move, without a GPU
    assert tok.radix.device.type == "meta"
    assert next(model.network.parameters()).device.type == "meta"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"objective": "ddpm", "history_noise_level": 50},
        {"objective": "edm", "residual": True},
        {"objective": "flow", "residual": True},
    ],
    ids=["ddpm", "edm-residual", "flow-residual"],
)
def test_history_cache_gives_the_rollout_of_recomputing_the_window(kwargs):
    """With several steps and guidance a frame takes 2 x 3 network calls: with the history
    cache the window's history is encoded once per frame and every call runs on the new frame
    alone; the rollout equals the one that reruns the whole window at every call."""
    frames, actions = _data(length=8)
    models = []
    for cache in (True, False):
        torch.manual_seed(0)
        model = flat_model(
            SPEC, num_sampling_steps=3, guidance_scale=1.5, context_window=4,
            history_cache=cache, **kwargs,
        ).eval()  # fmt: skip
        with torch.no_grad():  # adaLN-Zero starts at zero: randomise so the network matters
            for p in model.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.2)
        models.append(model)
    cached, plain = models
    calls = {"forward": 0, "history_kv": 0}
    cached.network.register_forward_pre_hook(lambda m, a: calls.__setitem__("forward", 1))
    encode = cached.network.history_kv

    def history_kv(*args):
        calls["history_kv"] += 1
        return encode(*args)

    cached.network.history_kv = history_kv
    torch.manual_seed(1)
    a = cached.rollout(frames[:, :2], actions[:, 1:6]).frames  # past the 4-frame window
    torch.manual_seed(1)
    b = plain.rollout(frames[:, :2], actions[:, 1:6]).frames
    assert calls == {"forward": 0, "history_kv": 5}  # one encoding per frame, no full window
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert (a - frames[:, 1:2]).abs().mean() > 0.05  # the network shaped the frames


def test_encoding_and_decoding_bring_the_tokenizer_to_the_frames_device(monkeypatch):
    """Strategies that place parameters themselves (FSDP) bypass ``_apply``: encoding and
    decoding call ``follow_device`` with the frames' device (core's test checks the move)."""
    import wmkit.diffusion_world.model_space as wm

    tok = ToyTokenizer(patch=4, channels=3, kind="continuous")
    model = flat_model(SPEC, image_size=4, network_kwargs={"patch_size": 1})
    model.set_tokenizer(tok)
    seen = []
    monkeypatch.setattr(wm, "follow_device", lambda c, d: seen.append((c, d)))
    frames, _ = _data()
    model.decode(model.encode(frames))
    assert seen == [(tok, frames.device), (tok, frames.device)]
