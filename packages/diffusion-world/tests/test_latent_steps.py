"""DiffusionWorldModel in latent steps of k = 4 frames (issue #33) over the weight-free
ToyVideoTokenizer: the k-aware conformance, causality per latent step, the carried history
cache, streamed vs window decoding, training clips, refusals, and the tiny config trained
through the CLI and played."""

import json
import sys
from pathlib import Path

import pytest
import torch

from wmkit.core import ActionSpec, BufferedState, load_pretrained, to_float_video
from wmkit.core.testing import ToyVideoTokenizer, WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusionWorldModel, EDMObjective, HeadsConfig
from wmkit.diffusion_world.cli import command

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import randomised

SPEC = ActionSpec.discrete(5)
K = 4
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _data(length: int = 1 + 3 * K, n: int = 2):
    eps = moving_squares(num_episodes=n, length=length, size=16)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


def _model(tokenizer: str | None = None, **kwargs) -> DiffusionWorldModel:
    """A k = 4 model on the toy tokenizer's 12-channel 4x4 latents, its zero-initialised
    parameters drawn at random so that actions change the frames."""
    network = {
        "class_path": "wmkit.diffusion_world.SpatioTemporalDiT",
        "init_args": {"in_channels": 24 if kwargs.get("residual") else 12, "out_channels": 12,
                      "image_size": 4, "patch_size": 1, "hidden_size": 16, "depth": 1,
                      "num_heads": 2},
    }  # fmt: skip
    args = {"sampling": {"num_steps": 2, "context_window": 3, "guidance_scale": 1.5}, **kwargs}
    torch.manual_seed(0)
    model = DiffusionWorldModel(
        SPEC, network, channels=12, image_size=4, tokenizer=tokenizer, frames_per_step=K, **args
    )
    if tokenizer is None:
        model.set_tokenizer(ToyVideoTokenizer(frames_per_latent=K, patch=4))
    return randomised(model).eval()


class TestLatentStepDiT(WorldModelTests):
    """check_world_model at k = 4: frames of earlier latent steps bit-identical under a later
    action, determinism, rollout == the new_frames of reset + step (lag k - 1), save/load
    with the tokenizer saved in tokenizer/."""

    def make_model(self):
        ToyVideoTokenizer(frames_per_latent=K, patch=4).save_pretrained(self.tmp / "tok")
        return _model(str(self.tmp / "tok"))

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :6], actions[:, 5:12]  # context trimmed to 5 frames; 7 = 1·4 + 3

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp = tmp_path


def test_an_action_changes_only_its_latent_step_and_later():
    model = _model()
    frames, actions = _data()
    context, acts = frames[:, :5], actions[:, 4:12]  # two latent steps
    for t in range(acts.shape[1]):
        changed = acts.clone()
        changed[:, t] = (changed[:, t] + 1) % SPEC.n
        torch.manual_seed(1)
        a = model.rollout(context, acts).frames
        torch.manual_seed(1)
        b = model.rollout(context, changed).frames
        step = t // K
        assert torch.equal(a[:, : step * K], b[:, : step * K]), t
        assert not torch.equal(a[:, step * K : (step + 1) * K], b[:, step * K : (step + 1) * K])


def test_a_carried_history_cache_gives_the_sliding_windows_latent_steps():
    # EDM + residual (each latent diffused as its change from the previous one), a window of
    # 6 latents: until it is full, carrying the cache equals re-encoding the history
    frames, actions = _data()
    rolled = []
    for carry in (False, True):
        model = _model(
            objective=EDMObjective(sigma_data=0.2), residual=True,
            sampling={"num_steps": 2, "context_window": 6, "carry_history": carry},
        )  # fmt: skip
        torch.manual_seed(4)
        rolled.append(model.rollout(frames[:, :5], actions[:, 4:12]).frames)
    torch.testing.assert_close(rolled[0], rolled[1], atol=1e-5, rtol=0)


class _NoStreaming(torch.nn.Module):
    """The toy tokenizer without ``decode_next``: the model decodes its window each step."""

    def __init__(self, inner: ToyVideoTokenizer) -> None:
        super().__init__()
        self.inner = inner
        for name in ("kind", "vocab_size", "latent_channels", "spatial_compression",
                     "temporal_compression", "encode", "decode", "tokens_shape"):  # fmt: skip
            object.__setattr__(self, name, getattr(inner, name))


def test_window_decoding_without_decode_next_gives_the_streamed_frames():
    # each toy latent decodes on its own, so both paths must give the same frames
    model = _model()
    frames, actions = _data()
    torch.manual_seed(2)
    streamed = model.rollout(frames[:, :5], actions[:, 4:12]).frames
    state = model.reset(frames[:, :5])
    assert isinstance(state, BufferedState) and state.inner.stream is not None
    model.set_tokenizer(_NoStreaming(model.tokenizer))
    torch.manual_seed(2)
    windowed = model.rollout(frames[:, :5], actions[:, 4:12]).frames
    assert model.reset(frames[:, :5]).inner.stream is None
    assert torch.equal(streamed, windowed)


def test_training_clips_group_actions_per_latent_step():
    model = _model().train()
    frames, actions = _data()
    x = model.encode(frames)
    assert x.shape == (2, 4, 12, 4, 4)  # 1 + 3·4 frames → 1 + 3 latents
    cond = model.frame_conditions(actions, frames.shape[1], 2)
    assert cond.shape == (2, 4, model.network.cond_dim)
    assert torch.equal(cond[:, 0], model.action_embed.null_like((2,)))
    assert torch.equal(cond[:, 2], model.action_embed(actions[:, K : 2 * K]))  # actions 4…7
    loss = model.loss(frames, actions, x)
    loss.loss.backward()
    assert torch.isfinite(loss.loss) and loss.timesteps.shape == (2, 4)
    with pytest.raises(ValueError, match=r"training clips must have 1 \+ n·4 frames"):
        model.loss(frames[:, :12], actions[:, :12])


def test_latent_steps_refuse_what_they_do_not_support():
    with pytest.raises(ValueError, match="heads"):
        _model(heads=HeadsConfig(reward=True))
    with pytest.raises(ValueError, match="anchored_decoding"):
        _model(anchored_decoding=True)
    model = _model()
    with pytest.raises(ValueError, match="temporal_compression must be 4"):
        model.set_tokenizer(ToyVideoTokenizer(frames_per_latent=2, patch=4))
    frames, actions = _data()
    with pytest.raises(ValueError, match=r"\[B, 4, \.\.\.\] actions"):
        model.step_latent(model.reset(frames[:, :5]).inner, actions[:, :3])
    with pytest.raises(TypeError, match="DiffusionState"):
        model.step_latent(model.reset(frames[:, :5]), actions[:, :4])
    with pytest.raises(ValueError, match="frames_per_step must be 1"):
        model.sample_frame(frames, actions, 1)
    with pytest.raises(ValueError, match="attach one"):
        model.set_tokenizer(None).encode(frames)


def test_tiny_4x_config_trains_through_the_cli_and_plays(tmp_path):
    out = tmp_path / "world"
    argv = ["fit", "-c", str(CONFIGS / "tiny_4x.yaml"), "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false", "--trainer.logger=false",
            f"--export_dir={out}"]  # fmt: skip
    assert command.run(argv) == 0
    assert json.loads((out / "config.json").read_text())["frames_per_step"] == K
    model = load_pretrained(out)
    assert isinstance(model.tokenizer, ToyVideoTokenizer)
    frames, actions = _data()
    context, acts = frames[:, :5], actions[:, 4:12]
    torch.manual_seed(3)
    rolled = model.rollout(context, acts).frames
    torch.manual_seed(3)
    state, served = model.reset(context), []
    for t in range(acts.shape[1]):
        out = model.step(state, acts[:, t])
        assert out.lag == min(t + 1, K - 1)
        assert (out.new_frames is not None) == (t % K == K - 1)
        if out.new_frames is not None:
            assert torch.equal(out.new_frames, rolled[:, t + 1 - K : t + 1])
        served.append(out.frame)
        state = out.state
    assert torch.equal(torch.stack(served, 1)[:, K - 1 :], rolled[:, : acts.shape[1] - K + 1])


def test_a_config_saved_without_frames_per_step_loads_per_frame(tmp_path):
    model = DiffusionWorldModel(SPEC, sampling={"num_steps": 1})
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config.pop("frames_per_step") == 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))  # as 0.1.x wrote it
    assert DiffusionWorldModel.from_pretrained(tmp_path / "m").frames_per_step == 1
