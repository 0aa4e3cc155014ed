"""Causalized diffusers WanTransformer3DModel: block-causal attention and per-frame timesteps
(strict causality), the wrapper reproducing diffusers' Wan (one frame; several frames under the
same block mask through diffusers' own attention processor), pretrained
weights from a local path, the world model on it, errors. Its history cache is tested with
the UNets' in ``test_diffusers_history_cache.py``."""

import copy
import sys
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan import WanAttnProcessor
from torch import nn

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import WorldModelTests, check_causality, moving_squares
from wmkit.diffusion_world import (
    CausalWanAttnProcessor,
    CausalWanTransformer,
    causalize,
    load_diffusers_network,
    tiny_wan_config,
)

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import check_pretrained_network, flat_model, network_inputs

SPEC = ActionSpec.discrete(5)
TOKENS = 16  # 8x8 frames in 2x2 patches


def _wan(seed: int = 0, **overrides) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(**tiny_wan_config(3, **overrides)).eval()


def _inputs(t: int = 4, batch: int = 2):
    return network_inputs(t, batch, cond_dim=8)


def _causal(seed: int = 0) -> CausalWanTransformer:
    net = causalize(_wan(seed), cond_dim=8).eval()
    with torch.no_grad():
        nn.init.normal_(net.cond_proj.weight, std=0.1)  # zero-initialised: make actions matter
    return net


class _MaskedWanProcessor(WanAttnProcessor):
    """diffusers' own Wan attention, given a fixed mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):  # fmt: skip
        return super().__call__(attn, hidden_states, None, self.mask, rotary_emb)


def test_original_wan_is_not_causal():
    wan = _wan()
    x, ts, _ = _inputs(batch=1)

    def fn(v):  # diffusers takes [B, C, T, H, W] and one timestep per sample
        return wan(v.transpose(1, 2), ts[:, 0], torch.zeros(1, 1, 16)).sample.transpose(1, 2)

    with pytest.raises(AssertionError, match="not causal"), torch.no_grad():
        check_causality(fn, x, positions=[2])


def test_causalized_wan_is_strictly_causal_in_frames_noise_and_conditions():
    net = _causal()
    assert all(
        isinstance(b.attn1.processor, CausalWanAttnProcessor) for b in net.transformer.blocks
    )
    assert not any(isinstance(b.attn2.processor, CausalWanAttnProcessor)
                   for b in net.transformer.blocks)  # fmt: skip  # text cross-attention
    x, ts, cond = _inputs()
    with torch.no_grad():
        check_causality(lambda v: net(v, ts, cond), x, what="frames")
        check_causality(lambda s: net(x, s, cond), ts, what="timesteps")
        check_causality(lambda c: net(x, ts, c), cond, what="conditions")


def test_one_frame_equals_diffusers_wan():
    """One frame has no future: the causal network is diffusers' Wan with that frame's
    timestep and the learned context as its text, which checks the wrapper's forward."""
    wan = _wan()
    reference = copy.deepcopy(wan)
    net = causalize(wan)
    with torch.no_grad():
        net.context.normal_()
    x, ts, _ = _inputs(t=1)
    with torch.no_grad():
        ref = reference(x.transpose(1, 2), ts[:, 0], net.context.expand(2, -1, -1)).sample
        out = net(x, ts)
    torch.testing.assert_close(out, ref.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_frames_equal_diffusers_wan_under_the_same_block_mask():
    """Several frames: diffusers' Wan with per-token timesteps (its Wan 2.2 path) and its own
    attention processor given the block-causal mask equals the causal network, which checks
    the per-frame modulation and the attention processor."""
    wan = _wan()
    reference = copy.deepcopy(wan)
    net = causalize(wan)
    x, ts, _ = _inputs(t=3)
    frame = torch.arange(3 * TOKENS) // TOKENS
    for block in reference.blocks:
        block.attn1.processor = _MaskedWanProcessor(frame[:, None] >= frame[None, :])
    with torch.no_grad():
        per_token = ts.repeat_interleave(TOKENS, dim=1)  # [B, T·n]
        ref = reference(x.transpose(1, 2), per_token, net.context.expand(2, -1, -1)).sample
        out = net(x, ts)
    torch.testing.assert_close(out, ref.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_per_frame_timesteps_change_that_frame_and_later_ones_only():
    net = _causal()
    x, _, _ = _inputs()
    ts = torch.full((2, 4), 500)
    with torch.no_grad():
        base = net(x, ts)
        ts2 = ts.clone()
        ts2[:, 2] = 10
        out = net(x, ts2)
    assert torch.equal(out[:, :2], base[:, :2])
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-4
    assert (out[:, 3] - base[:, 3]).abs().max() > 1e-4  # reaches later frames through attention


def test_pretrained_wan_loads_from_a_local_path(tmp_path):
    def load(folder):
        return load_diffusers_network(folder, expected="WanTransformer3DModel")

    check_pretrained_network(
        _wan(seed=3), tmp_path / "transformer", load, _inputs(t=3)[:2], SPEC,
        CausalWanTransformer, "unet3d",
    )  # fmt: skip


def test_bad_inputs_and_unsupported_wan_variants_fail_clearly():
    net = causalize(_wan())
    with pytest.raises(ValueError, match="timesteps"):
        net(torch.randn(1, 3, 3, 8, 8), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="channels"):
        net(torch.randn(1, 3, 5, 8, 8), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="patches"):
        net(torch.randn(1, 3, 3, 7, 8), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="temporal patch 1"):
        causalize(_wan(patch_size=(2, 2, 2)))
    with pytest.raises(ValueError, match="image-to-video"):
        causalize(_wan(image_dim=8, added_kv_proj_dim=24))
    with pytest.raises(RuntimeError, match="inside CausalWanTransformer"):
        attn = net.transformer.blocks[0].attn1
        CausalWanAttnProcessor()(attn, torch.randn(1, 16, 24))
    with pytest.raises(ValueError, match="size"):
        flat_model(SPEC, network="wan", size="huge")


class TestCausalWanWorldModel(WorldModelTests):
    def make_model(self):
        return flat_model(SPEC, network="wan", image_size=8, num_sampling_steps=1, context_window=3)

    def make_inputs(self):
        eps = moving_squares(num_episodes=1, length=4, size=8)
        return to_float_video(eps.frames)[:, :1], torch.from_numpy(eps.actions)[:, :3]
