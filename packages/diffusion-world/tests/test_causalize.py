"""Causalized diffusers UNetSpatioTemporalConditionModel: strict causality, per-frame noise,
pretrained weights from a local path."""

import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.attention import TemporalBasicTransformerBlock

from wmkit.core.testing import check_causality
from wmkit.diffusion_world import (
    CausalAttnProcessor,
    CausalTemporalConv3d,
    causalize,
    load_diffusers_unet,
    tiny_svd_unet_config,
)

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import network_inputs, randomised


def _unet(seed: int = 0) -> UNetSpatioTemporalConditionModel:
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**tiny_svd_unet_config(3))
    # make the zero-initialised mixing paths matter
    return randomised(unet, std=0.1, seed=None).eval()


def test_original_unet_is_not_causal():
    unet = _unet()
    x, ts, _ = network_inputs()
    ehs = torch.zeros(1, 1, 8)
    ids = torch.zeros(1, 3)

    def fn(v):
        return unet(v, ts[0, 0], ehs, ids).sample

    with pytest.raises(AssertionError, match="not causal"), torch.no_grad():
        check_causality(fn, x, positions=[2])


@pytest.mark.parametrize("rule", ["shift", "masked", "extrapolative"])
def test_causalized_unet_is_strictly_causal_in_frames_noise_and_conditions(rule):
    net = causalize(_unet(), rule, cond_dim=16).eval()
    with torch.no_grad():
        torch.nn.init.normal_(net.cond_proj.weight, std=0.1)
    x, ts, cond = network_inputs()
    convs = [m for m in net.modules() if isinstance(m, CausalTemporalConv3d)]
    assert convs and all(c.rule == rule for c in convs)
    blocks = [m for m in net.modules() if isinstance(m, TemporalBasicTransformerBlock)]
    assert blocks and all(isinstance(b.attn1.processor, CausalAttnProcessor) for b in blocks)
    with torch.no_grad():
        check_causality(lambda v: net(v, ts, cond), x, what="frames")
        check_causality(lambda s: net(x, s, cond), ts, what="timesteps")
        check_causality(lambda c: net(x, ts, c), cond, what="conditions")


def test_per_frame_noise_levels_reach_the_causal_unet():
    net = causalize(_unet()).eval()
    x, ts, _ = network_inputs()
    with torch.no_grad():
        base = net(x, ts)
        ts2 = ts.clone()
        ts2[0, 2] = (ts2[0, 2] + 500) % 1000
        out = net(x, ts2)
    assert torch.equal(out[:, :2], base[:, :2])
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-4


def test_pretrained_weights_load_from_a_local_path(tmp_path):
    unet = _unet(seed=3)
    unet.save_pretrained(tmp_path / "unet")
    loaded = load_diffusers_unet(tmp_path / "unet")
    for (k, a), (_, b) in zip(unet.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x, ts, _ = network_inputs()
    with torch.no_grad():
        a = causalize(unet)(x, ts)
        b = causalize(loaded.eval())(x, ts)
    assert torch.equal(a, b)


def test_missing_pretrained_path_and_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no diffusers network directory"):
        load_diffusers_unet(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diffusers_unet(tmp_path / "empty")
    with pytest.raises(ValueError, match="temporal_conv"):
        causalize(_unet(), "sideways")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="UNetSpatioTemporalConditionModel"):
        causalize(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    net = causalize(_unet())
    with pytest.raises(ValueError, match="timesteps"):
        net(torch.randn(1, 3, 3, 8, 8), torch.zeros(1, 2))
