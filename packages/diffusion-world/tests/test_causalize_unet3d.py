"""Causalized diffusers UNet3DConditionModel: strict causality for each temporal-conv rule,
per-frame timesteps, Vid2World's weight transfer on the UNet's own temporal convs, the wrapper
reproducing diffusers' forward, pretrained weights from a local path, errors."""

import copy
import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNet3DConditionModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from torch import nn

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import WorldModelTests, check_causality, moving_squares
from wmkit.diffusion_world import (
    CausalAttnProcessor,
    CausalTemporalConv3d,
    CausalUNet3D,
    FrameGroupNorm,
    causalize,
    load_diffusers_unet,
    tiny_unet3d_config,
)

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import check_pretrained_network, flat_model, network_inputs, randomised

RULES = ["shift", "masked", "extrapolative"]
SPEC = ActionSpec.discrete(5)


def _unet(seed: int = 0) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(**tiny_unet3d_config(3))
    # TemporalConvLayer.conv4 is zero-initialised: make it matter
    return randomised(unet, std=0.1, seed=None).eval()


def test_original_unet3d_is_not_causal():
    unet = _unet()
    x, ts, _ = network_inputs()

    def fn(v):  # diffusers takes [B, C, T, H, W]
        return unet(v.transpose(1, 2), ts[0, 0], torch.zeros(1, 1, 8)).sample.transpose(1, 2)

    with pytest.raises(AssertionError, match="not causal"), torch.no_grad():
        check_causality(fn, x, positions=[2])


@pytest.mark.parametrize("rule", RULES)
def test_causalized_unet3d_is_strictly_causal_in_frames_noise_and_conditions(rule):
    net = causalize(_unet(), rule, cond_dim=16).eval()
    assert isinstance(net, CausalUNet3D)
    with torch.no_grad():
        nn.init.normal_(net.cond_proj.weight, std=0.1)
    # every temporal layer was replaced: 4 convs per TemporalConvLayer, 2 attentions per block
    convs = [m for m in net.modules() if isinstance(m, CausalTemporalConv3d)]
    assert len(convs) == 4 * len(net.unet.mid_block.temp_convs + _temp_convs(net.unet))
    assert all(c.rule == rule for c in convs)
    assert not any(type(m) is nn.Conv3d or type(m) is nn.GroupNorm for m in net.modules())
    temporal = [m for m in net.modules() if isinstance(m, TransformerTemporalModel)]
    assert temporal and all(isinstance(m.norm, FrameGroupNorm) for m in temporal)
    for m in temporal:
        for block in m.transformer_blocks:
            assert isinstance(block.attn1.processor, CausalAttnProcessor)
            assert isinstance(block.attn2.processor, CausalAttnProcessor)
    x, ts, cond = network_inputs()
    with torch.no_grad():
        check_causality(lambda v: net(v, ts, cond), x, what="frames")
        check_causality(lambda s: net(x, s, cond), ts, what="timesteps")
        check_causality(lambda c: net(x, ts, c), cond, what="conditions")


def _temp_convs(unet: UNet3DConditionModel) -> list[nn.Module]:
    return [c for b in [*unet.down_blocks, *unet.up_blocks] for c in b.temp_convs]


def test_per_frame_timesteps_change_that_frame_and_later_ones_only():
    net = causalize(_unet()).eval()
    x, _, _ = network_inputs()
    ts = torch.full((1, 4), 500)
    with torch.no_grad():
        base = net(x, ts)
        ts2 = ts.clone()
        ts2[0, 2] = 10  # one frame at a different noise level
        out = net(x, ts2)
    assert torch.equal(out[:, :2], base[:, :2])
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-4
    assert (out[:, 3] - base[:, 3]).abs().max() > 1e-4  # reaches later frames through time


def test_masked_rule_on_one_frame_equals_the_diffusers_unet():
    """With one frame nothing is in the future: the masked causal network is the original
    (same per-frame time embedding, temporal layers, blocks), which checks the wrapper's
    forward against diffusers' own."""
    unet = _unet()
    x, ts, _ = network_inputs(t=1)
    with torch.no_grad():
        ref = unet(x.transpose(1, 2), ts[0], torch.zeros(1, 1, 8)).sample.transpose(1, 2)
        out = causalize(unet, "masked")(x, ts)
    assert torch.allclose(out, ref, atol=1e-5)


def test_extrapolative_transfer_is_exact_on_linear_input_for_every_temporal_conv():
    unet = _unet()
    originals = {
        name: copy.deepcopy(m) for name, m in unet.named_modules() if isinstance(m, nn.Conv3d)
    }
    assert len(originals) == 4 * (len(unet.mid_block.temp_convs) + len(_temp_convs(unet)))
    errs = {}
    for rule in RULES:
        net = causalize(copy.deepcopy(unet), rule)
        causal = dict(net.unet.named_modules())
        worst = 0.0
        for name, conv in originals.items():
            torch.manual_seed(1)
            a, b = torch.randn(2, 1, conv.in_channels, 1, 2, 2).unbind(0)
            x = a + b * torch.arange(8.0).view(1, 1, 8, 1, 1)  # [1, C, 8, 2, 2], linear in time
            with torch.no_grad():  # interior frames: the original uses no zero padding there
                ref = conv(x)[:, :, 2:-1]
                out = causal[name](x)[:, :, 2:-1]
            worst = max(worst, ((out - ref).abs().max() / ref.abs().max()).item())
        errs[rule] = worst
    assert errs["extrapolative"] < 1e-5
    assert errs["shift"] > 1e-2 and errs["masked"] > 1e-2


def test_pretrained_unet3d_loads_from_a_local_path(tmp_path):
    folder = tmp_path / "unet3d"
    loaded = check_pretrained_network(
        _unet(seed=3), folder, load_diffusers_unet, network_inputs()[:2], SPEC, CausalUNet3D,
        "svd_unet",
    )  # fmt: skip
    assert isinstance(loaded, UNet3DConditionModel)
    with pytest.raises(ValueError, match="expected a UNetSpatioTemporalConditionModel"):
        load_diffusers_unet(folder, expected="UNetSpatioTemporalConditionModel")


def test_bad_inputs_and_cross_attention_temporal_transformers_fail_clearly():
    net = causalize(_unet())
    with pytest.raises(ValueError, match="timesteps"):
        net(torch.randn(1, 3, 3, 8, 8), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="channels"):
        net(torch.randn(1, 3, 5, 8, 8), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="temporal_conv"):
        causalize(_unet(), "sideways")  # type: ignore[arg-type]
    unet = _unet()
    unet.transformer_in = TransformerTemporalModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=16,
        norm_num_groups=8,
        cross_attention_dim=8,
        double_self_attention=False,
    )
    with pytest.raises(ValueError, match="cross-attention"):
        causalize(unet)
    with pytest.raises(ValueError, match="size"):
        flat_model(SPEC, network="unet3d", size="huge")


class TestCausalUNet3DWorldModel(WorldModelTests):
    def make_model(self):
        return flat_model(
            SPEC,
            network="unet3d",
            image_size=8,
            num_sampling_steps=1,
            context_window=3,
            temporal_conv="extrapolative",
        )

    def make_inputs(self):
        eps = moving_squares(num_episodes=1, length=4, size=8)
        return to_float_video(eps.frames)[:, :1], torch.from_numpy(eps.actions)[:, :3]
