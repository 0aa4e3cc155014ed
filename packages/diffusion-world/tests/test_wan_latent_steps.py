"""The causalized Wan network on real Wan 2.1 VAE latents (issue #33): a tiny random
``AutoencoderKLWan`` encoding clips as video (4x temporal compression) and a tiny causalized
``WanTransformer3DModel`` in latent steps of 4 frames pass the k-aware conformance (tokenizer
saved in ``tokenizer/``), train, and roll out frames equal to the VAE's decode of the whole
latent video (the streamed ``decode_next`` never decodes the history again), and a kept state
forks the VAE's decode stream."""

import sys
from pathlib import Path

import pytest
import torch

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusersVAETokenizer, DiffusionWorldModel

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import randomised

SPEC = ActionSpec.discrete(5)
WAN21 = {  # Wan 2.1's VAE layout, tiny: 4x temporal, 4x spatial compression, 4 channels
    "base_dim": 8, "z_dim": 4, "dim_mult": [1, 1, 1], "num_res_blocks": 1,
    "temperal_downsample": [True, True], "latents_mean": [0.1, 0.2, 0.0, -0.1],
    "latents_std": [1.5, 2.0, 1.0, 0.5],
}  # fmt: skip


def _data(length: int = 13):
    eps = moving_squares(num_episodes=2, length=length, size=16)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


def _model(context_window: int = 3) -> DiffusionWorldModel:
    torch.manual_seed(0)
    tokenizer = DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=WAN21)
    network = {
        "class_path": "wmkit.diffusion_world.networks.causal_diffusers_network",
        "init_args": {"model_class": "WanTransformer3DModel", "size": "tiny",
                      "config": {"in_channels": 4, "out_channels": 4}},
    }  # fmt: skip
    model = DiffusionWorldModel(
        SPEC, network, channels=4, image_size=4, frames_per_step=4,
        sampling={"num_steps": 1, "context_window": context_window, "guidance_scale": 1.5},
    ).set_tokenizer(tokenizer)  # fmt: skip
    return randomised(model).eval()


class TestWanLatentSteps(WorldModelTests):
    def make_model(self):
        return _model()

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :5], actions[:, 4:10]  # 6 actions: one latent step and a half


def test_wan_on_wan_latents_trains_and_streams_the_vaes_decode():
    model = _model(context_window=8).train()
    frames, actions = _data()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = model.encode(frames)
    assert x.shape == (2, 4, 4, 4, 4)  # 13 = 1 + 3·4 frames → 4 latents of 4x4
    losses = []
    for _ in range(3):
        loss = model.loss(frames, actions, x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    model.eval()
    torch.manual_seed(0)
    out = model.rollout(frames[:, :5], actions[:, 4:12])  # two latent steps
    torch.manual_seed(0)  # the same latent steps through step, to read their latents
    state = model.reset(frames[:, :5])
    for t in range(8):
        step = model.step(state, actions[:, 4 + t])
        state = step.state
    latents = state.inner.x  # the context's 2 latents and the 2 generated
    # decoded as one video by diffusers' vae.decode: what the streamed decode_next gave
    assert latents.shape[1] == 4
    whole = model.tokenizer.decode(latents / model.latent_scale).clamp(-1, 1)
    torch.testing.assert_close(out.frames, whole[:, 5:], atol=1e-4, rtol=0)


def test_wan_latent_steps_need_the_vaes_video_latents():
    model = _model()
    per_frame = DiffusersVAETokenizer("AutoencoderKLWan", vae_kwargs=WAN21, frame_wise=True)
    with pytest.raises(ValueError, match="temporal_compression must be 4"):
        model.set_tokenizer(per_frame)


def test_a_kept_state_forks_the_wan_vaes_stream():
    # the decode stream lives in the state: stepping one branch leaves a kept state intact
    model = _model()
    frames, actions = _data()
    state = model.reset(frames[:, :5])
    for t in range(4):
        state = model.step(state, actions[:, 4 + t]).state
    kept = state

    def branch(acts: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(5)
        s, new = kept, None
        for t in range(4):
            out = model.step(s, acts[:, t])
            s, new = out.state, out.new_frames if out.new_frames is not None else new
        return new

    first = branch(actions[:, 8:12])
    other = branch((actions[:, 8:12] + 1) % SPEC.n)
    assert not torch.equal(first, other)
    assert torch.equal(branch(actions[:, 8:12]), first)
