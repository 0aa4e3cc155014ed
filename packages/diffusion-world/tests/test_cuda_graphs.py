"""``cuda_graphs=True``: the graphed network runs only at CUDA inference and gives the eager
network's outputs (the GPU test; on CPU the option is a no-op by design, which is checked)."""

import sys
from pathlib import Path

import pytest
import torch

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.diffusion_world.cuda_graphs import GraphedNetwork

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

SPEC = ActionSpec.discrete(5)


def _model(**kwargs) -> DiffusionWorldModel:
    torch.manual_seed(0)
    model = flat_model(
        SPEC, objective="edm", residual=True, num_sampling_steps=2, guidance_scale=1.5,
        context_window=4, **kwargs,
    ).eval()  # fmt: skip
    with torch.no_grad():  # adaLN-Zero starts at zero: randomise so the network matters
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)
    return model


def _inputs(device: str = "cpu"):
    eps = moving_squares(num_episodes=2, length=8, size=16)
    frames, actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    return frames[:, :2].to(device), actions[:, 1:7].to(device)


def test_cuda_graphs_is_eager_off_cuda_and_in_training():
    frames, actions = _inputs()
    plain, graphed = _model(), _model(cuda_graphs=True)
    torch.manual_seed(3)
    a = plain.rollout(frames, actions).frames
    torch.manual_seed(3)
    b = graphed.rollout(frames, actions).frames
    assert torch.equal(a, b)
    assert graphed.denoiser._graphed and all(
        g.num_graphs == 0 for g in graphed.denoiser._graphed.values()
    )  # CPU
    graphed.train()
    eps = moving_squares(num_episodes=2, length=4, size=16)
    clip, clip_actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    graphed.loss(clip, clip_actions).loss.backward()  # training never goes through a graph
    assert all(g.num_graphs == 0 for g in graphed.denoiser._graphed.values())


def test_cuda_graphs_needs_the_dit_and_moving_drops_graphs():
    with pytest.raises(ValueError, match="cuda_graphs=True needs network='dit'"):
        flat_model(SPEC, network="svd_unet", cuda_graphs=True)
    model = _model(cuda_graphs=True)
    model.denoiser._graphed = {"forward": GraphedNetwork(model.network)}
    model.to(torch.float64)
    assert model.denoiser._graphed == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("autocast", [False, True])
def test_cuda_graph_replay_equals_eager_on_gpu(autocast):
    frames, actions = _inputs("cuda")
    model = _model(cuda_graphs=True).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        torch.manual_seed(3)
        graphed = model.rollout(frames, actions).frames
        assert sum(g.num_graphs for g in model.denoiser._graphed.values()) > 0
        model.cuda_graphs = False
        torch.manual_seed(3)
        eager = model.rollout(frames, actions).frames
    torch.testing.assert_close(graphed, eager, rtol=0, atol=1e-5 if not autocast else 2e-2)
