"""The causalized diffusers networks' history cache (``temporal_cache.py``): running the new
frames after a cached history equals the full forward over the window (both UNets and Wan, any
history length,
guidance's doubled batch), appending equals recording the longer history, the world model's
cached and carried rollouts equal the uncached ones while running the window once per frame
at most, and misuse fails clearly."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import diffusers_networks, flat_model, randomised

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.diffusion_world.causalize import causalize
from wmkit.diffusion_world.temporal_cache import TemporalHistory

SPEC = ActionSpec.discrete(5)
NETWORKS = diffusers_networks()


def _net(kind: str):
    torch.manual_seed(0)
    cls, config = NETWORKS[kind]
    return randomised(causalize(cls(**config(3)), "extrapolative", cond_dim=8), 0.1).eval()


def _inputs(frames: int = 6):
    torch.manual_seed(1)
    return torch.randn(2, frames, 3, 16, 16), torch.rand(2, frames) * 500, torch.randn(2, frames, 8)


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("length, new", [(1, 1), (2, 1), (4, 2)])
def test_the_frames_after_a_cached_history_equal_the_full_forward(kind, length, new):
    """History 1 and 2 are shorter than the temporal convolutions' padding (k - 1 = 2)."""
    net = _net(kind)
    x, t, c = _inputs(length + new)
    with torch.no_grad():
        full = net(x, t, c)
        history = net.history_kv(x[:, :length], t[:, :length], c[:, :length])
        out = net.forward_next(x[:, length:], t[:, length:], c[:, length:], history)
        moved = x.clone()
        moved[:, 0] += 1.0  # the first frame changed: the new frames must see it
        other = net.forward_next(
            x[:, length:], t[:, length:], c[:, length:], net.history_kv(moved[:, :length],
            t[:, :length], c[:, :length]),
        )  # fmt: skip
    assert history.frames == length and history.batch == 2
    torch.testing.assert_close(out, full[:, length:], atol=1e-5, rtol=1e-5)
    assert (other - out).abs().max() > 1e-3


@pytest.mark.parametrize("kind", NETWORKS)
def test_appending_equals_recording_the_longer_history(kind):
    net = _net(kind)
    x, t, c = _inputs(6)
    with torch.no_grad():
        full = net(x, t, c)
        history = net.history_kv(x[:, :2], t[:, :2], c[:, :2])
        for i in (2, 3, 4):
            history = net.append_kv(x[:, i : i + 1], t[:, i : i + 1], c[:, i : i + 1], history)
        out = net.forward_next(x[:, 5:], t[:, 5:], c[:, 5:], history)
    assert history.frames == 5
    torch.testing.assert_close(out, full[:, 5:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", NETWORKS)
def test_guidance_branches_share_the_history(kind):
    """The sampler doubles the batch (conditional, unconditional) for the new frame only."""
    net = _net(kind)
    x, t, c = _inputs(5)
    null = torch.zeros_like(c[:, 4:])
    with torch.no_grad():
        history = net.history_kv(x[:, :4], t[:, :4], c[:, :4])
        out = net.forward_next(
            x[:, 4:].repeat(2, 1, 1, 1, 1), t[:, 4:].repeat(2, 1), torch.cat([c[:, 4:], null]),
            history,
        )  # fmt: skip
        conditional = net(x, t, c)[:, 4:]
        unconditional = net(x, t, torch.cat([c[:, :4], null], dim=1))[:, 4:]
    torch.testing.assert_close(out[:2], conditional, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2:], unconditional, atol=1e-5, rtol=1e-5)


def test_misuse_fails_clearly():
    net, other = _net("unet3d"), _net("unet3d")
    x, t, c = _inputs(3)
    with torch.no_grad():
        history = net.history_kv(x[:, :2], t[:, :2], c[:, :2])
        with pytest.raises(ValueError, match="not recorded by this network"):
            other.forward_next(x[:, 2:], t[:, 2:], c[:, 2:], history)
        with pytest.raises(ValueError, match="multiple of the history"):
            net.forward_next(x[:1, 2:].repeat(3, 1, 1, 1, 1), t[:1, 2:].repeat(3, 1),
                             c[:1, 2:].repeat(3, 1, 1), history)  # fmt: skip
        with pytest.raises(ValueError, match="append_kv"):
            net.append_kv(x[:, 2:].repeat(2, 1, 1, 1, 1), t[:, 2:].repeat(2, 1),
                          c[:, 2:].repeat(2, 1, 1), history)  # fmt: skip
        with pytest.raises(TypeError, match="TemporalHistory"):
            net.forward_next(x[:, 2:], t[:, 2:], c[:, 2:], torch.zeros(3))


def _data(length: int = 10):
    eps = moving_squares(num_episodes=2, length=length, size=16)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


def _world(kind: str, **kwargs) -> DiffusionWorldModel:
    kwargs.setdefault("context_window", 4)
    torch.manual_seed(0)
    model = flat_model(
        SPEC, network=kind, image_size=16, num_sampling_steps=2, guidance_scale=1.5, **kwargs
    )
    return randomised(model, 0.1).eval()


def _count(model: DiffusionWorldModel) -> dict[str, int]:
    counts = {"forward": 0, "history_kv": 0, "forward_next": 0, "append_kv": 0}
    net = model.network
    for name in ("history_kv", "forward_next", "append_kv"):
        original = getattr(net, name)

        def counted(*args, _name=name, _fn=original, **kw):
            counts[_name] += 1
            return _fn(*args, **kw)

        setattr(net, name, counted)
    # every entry point runs forward (nn.Module.__call__) once: the rest are full windows
    net.register_forward_pre_hook(lambda m, a: counts.__setitem__("forward", counts["forward"] + 1))
    return counts


@pytest.mark.parametrize("kind", NETWORKS)
def test_world_model_rollouts_with_the_cache_equal_those_without(kind):
    """2 steps, each one call on both guidance branches: uncached, the whole window runs
    twice per frame; cached, the history once and the new frame twice; carried with a
    refresh every frame (``refresh_keep = context_window - 1``), the same outputs past the
    window."""
    frames, actions = _data()
    outs, counts = {}, {}
    for name, kwargs in {
        "plain": {"history_cache": False},
        "cached": {},
        "carried": {"carry_history": True, "refresh_keep": 3},
    }.items():
        model = _world(kind, **kwargs)
        counts[name] = _count(model)
        torch.manual_seed(2)
        outs[name] = model.rollout(frames[:, :2], actions[:, 1:7]).frames  # window 4, 6 frames
    assert counts["plain"]["forward"] == 6 * 2 and counts["plain"]["history_kv"] == 0
    n = counts["cached"]
    assert (n["history_kv"], n["forward_next"], n["forward"]) == (6, 12, 18)
    torch.testing.assert_close(outs["cached"], outs["plain"], atol=1e-4, rtol=0)
    torch.testing.assert_close(outs["carried"], outs["plain"], atol=1e-4, rtol=0)
    assert (outs["plain"] - frames[:, 1:2]).abs().mean() > 0.05  # the network shaped the frames


def test_a_carried_unet_rollout_appends_instead_of_rerunning_the_history():
    frames, actions = _data(length=12)
    model = _world("unet3d", carry_history=True, context_window=6)  # refresh_keep 3
    counts = _count(model)
    out = model.rollout(frames[:, :2], actions[:, 1:10])
    assert out.frames.shape == (2, 9, 3, 16, 16)
    # history lengths 2 3 4 5 | 3 4 5 | 3 4: encoded after reset and 2 refreshes
    assert (counts["history_kv"], counts["append_kv"]) == (3, 7)  # no append when full
    assert counts["forward_next"] == 9 * 2
    assert counts["forward"] == 3 + 7 + 9 * 2  # the window never runs whole
    state = model.step(model.reset(frames[:, :2]), actions[:, 2]).state
    kv = state.kv  # the carried cache: the 2 context frames and the new one
    assert isinstance(kv, TemporalHistory) and (kv.frames, kv.batch) == (3, 2)
