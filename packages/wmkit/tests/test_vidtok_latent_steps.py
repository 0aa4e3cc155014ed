"""Composing packages (issue #33): a diffusion world model in latent steps of 4 frames on a
tiny random VidTok KL tokenizer with 4x temporal compression. It passes the k-aware
conformance (VidTok saved in ``tokenizer/``), and its rollout's frames, streamed through
VidTok's ``decode_next``, equal VidTok's ``decode`` of the whole latent video."""

import pytest
import torch

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.tokenizers import VidTokTokenizer

SPEC = ActionSpec.discrete(5)


def _data():
    eps = moving_squares(num_episodes=2, length=13, size=16)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


def _model(tokenizer: str, context_window: int = 3) -> DiffusionWorldModel:
    torch.manual_seed(0)
    network = {
        "class_path": "wmkit.diffusion_world.SpatioTemporalDiT",
        "init_args": {"in_channels": 4, "image_size": 4, "patch_size": 1, "hidden_size": 16,
                      "depth": 1, "num_heads": 2},
    }  # fmt: skip
    model = DiffusionWorldModel(
        SPEC, network, channels=4, image_size=4, tokenizer=tokenizer, frames_per_step=4,
        sampling={"num_steps": 2, "context_window": context_window, "guidance_scale": 1.5},
    )  # fmt: skip
    with torch.no_grad():  # adaLN-Zero starts as identity: draw it so that actions matter
        for p in (p for p in model.parameters() if not p.any()):
            p.normal_(0, 0.2)
    return model.eval()


@pytest.fixture
def vidtok(tmp_path) -> str:
    torch.manual_seed(0)
    tok = VidTokTokenizer(size="tiny", regularizer="kl", latent_channels=4,
                          spatial_compression=4, temporal_compression=4)  # fmt: skip
    tok.save_pretrained(tmp_path / "vidtok")
    return str(tmp_path / "vidtok")


class TestVidTokLatentSteps(WorldModelTests):
    def make_model(self):
        return _model(self.vidtok)

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :5], actions[:, 4:10]

    @pytest.fixture(autouse=True)
    def _tok(self, vidtok):
        self.vidtok = vidtok


def test_rollout_streams_vidtoks_decode_of_the_whole_latent_video(vidtok):
    model = _model(vidtok, context_window=8)
    frames, actions = _data()
    torch.manual_seed(0)
    rolled = model.rollout(frames[:, :5], actions[:, 4:12]).frames
    torch.manual_seed(0)  # the same two latent steps through step, to read their latents
    state = model.reset(frames[:, :5])
    for t in range(8):
        state = model.step(state, actions[:, 4 + t]).state
    latents = state.inner.x  # the context's 2 latents and the 2 generated
    assert latents.shape == (2, 4, 4, 4, 4)
    whole = model.tokenizer.decode(latents / model.latent_scale).clamp(-1, 1)
    torch.testing.assert_close(rolled, whole[:, 5:], atol=1e-5, rtol=0)
