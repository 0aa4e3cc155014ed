"""Native spatio-temporal DiT: strict causality, per-frame noise levels, sizes, errors."""

import pytest
import torch

from wmkit.core.testing import check_causality
from wmkit.diffusion_world import DIT_SIZES, SpatioTemporalDiT


def _dit() -> SpatioTemporalDiT:
    torch.manual_seed(0)
    net = SpatioTemporalDiT(in_channels=3, image_size=8, patch_size=2).eval()
    with torch.no_grad():  # adaLN-Zero starts as identity; randomise to test the real paths
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)
    return net


def test_dit_is_strictly_causal_in_frames_noise_levels_and_conditions():
    net = _dit()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 8, 8, generator=g)
    ts = torch.randint(0, 1000, (2, 5), generator=g)
    cond = torch.randn(2, 5, net.cond_dim, generator=g)
    with torch.no_grad():
        check_causality(lambda v: net(v, ts, cond), x, what="frames")
        check_causality(lambda s: net(x, s, cond), ts, what="timesteps")
        check_causality(lambda c: net(x, ts, c), cond, what="conditions")


def test_per_frame_noise_levels_reach_the_dit():
    net = _dit()
    x = torch.randn(1, 4, 3, 8, 8)
    ts = torch.tensor([[10, 200, 400, 900]])
    with torch.no_grad():
        base = net(x, ts)
        ts2 = ts.clone()
        ts2[0, 2] = 700
        out = net(x, ts2)
    assert torch.equal(out[:, :2], base[:, :2])
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-3


def test_gradient_checkpointing_gives_the_same_gradients():
    net = _dit().train()
    x, ts = torch.randn(1, 3, 3, 8, 8), torch.randint(0, 1000, (1, 3))
    grads = []
    for flag in (False, True):
        net.zero_grad()
        net.set_gradient_checkpointing(flag)
        net(x, ts).square().mean().backward()
        grads.append(net.patch_embed.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bad_inputs_and_configs_fail_clearly():
    net = _dit()
    with pytest.raises(ValueError, match="x must be"):
        net(torch.randn(1, 2, 3, 16, 16), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="timesteps"):
        net(torch.randn(1, 2, 3, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="patch_size"):
        SpatioTemporalDiT(image_size=9, patch_size=2)
    assert set(DIT_SIZES) == {"tiny", "small", "base", "large"}


def test_history_cache_equals_the_whole_window():
    """``forward_next`` after ``history_kv`` gives the whole window's last frame, also for a
    batch repeated over the history (guidance's two branches) with other conditions."""
    torch.manual_seed(0)
    net = SpatioTemporalDiT(in_channels=3, image_size=8, patch_size=2, hidden_size=32, depth=3,
                            num_heads=4).eval()  # fmt: skip
    with torch.no_grad():  # adaLN-Zero starts at zero: randomise so every block matters
        for p in net.parameters():
            p.normal_(0, 0.1)
    b, length = 2, 5
    x = torch.randn(b, length + 1, 3, 8, 8)
    t = torch.rand(b, length + 1) * 900
    c, other = torch.randn(b, length + 1, 32), torch.randn(b, 1, 32)
    with torch.no_grad():
        history = net.history_kv(x[:, :length], t[:, :length], c[:, :length])
        assert history.shape == (3, 2, b * 16, 4, length, 8)
        full = net(x, t, c)[:, -1:]
        assert full.abs().mean() > 0.1
        torch.testing.assert_close(net.forward_next(x[:, -1:], t[:, -1:], c[:, -1:], history),
                                   full, atol=1e-5, rtol=0)  # fmt: skip
        both = net.forward_next(
            x[:, -1:].repeat(2, 1, 1, 1, 1), t[:, -1:].repeat(2, 1),
            torch.cat([c[:, -1:], other]), history,
        )  # fmt: skip
        swapped = net(x, t, torch.cat([c[:, :-1], other], dim=1))[:, -1:]
        torch.testing.assert_close(both, torch.cat([full, swapped]), atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="one new frame"):
            net.forward_next(x[:, -2:], t[:, -2:], c[:, -2:], history)
        with pytest.raises(ValueError, match="history must be history_kv"):
            net.forward_next(x[:, -1:], t[:, -1:], c[:, -1:], history[0])
