"""DIAMOND's parts on their own: the network's input checks and padding, the preconditioning
identities, the training loss (next-frame with noised conditioning frames, the upsampler,
padding masks), the sampler's settings and draws."""

from __future__ import annotations

import pytest
import torch

from wmkit.diffusion_world.diamond import (
    DIAMOND_NETWORK_SIZES,
    DiamondDenoiser,
    DiamondEDM,
    DiamondNetwork,
    DiamondSampler,
    DiamondSamplerConfig,
    build_sigmas,
    upsample_next_obs,
)

TINY = DIAMOND_NETWORK_SIZES["tiny"]


def _denoiser(upsampler: bool = False, **kwargs) -> DiamondDenoiser:
    torch.manual_seed(0)
    if upsampler:
        net = DiamondNetwork(**TINY, num_steps_conditioning=1, upsampler=True)
        return DiamondDenoiser(net, DiamondEDM(sigma_offset_noise=0.1), False, 2)
    net = DiamondNetwork(**TINY, num_actions=5, **kwargs)
    return DiamondDenoiser(net, DiamondEDM(), noise_previous_obs=bool(kwargs))


def test_preconditioning_identities():
    """``c_skip + c_out² / σd² = 1`` at the offset level ``s``; ``D`` of the clean frame's
    target is the clean frame; quantisation floors onto the 8-bit grid."""
    obj = DiamondEDM(sigma_data=0.5, sigma_offset_noise=0.3)
    sigma = torch.tensor([0.01, 0.5, 4.0])
    cs = obj.conditioners(sigma)
    s2 = sigma**2 + 0.3**2
    torch.testing.assert_close(cs.c_skip.flatten() + cs.c_out.flatten() ** 2 / 0.25, torch.ones(3))
    torch.testing.assert_close(cs.c_in.flatten(), 1 / (s2 + 0.25).sqrt())
    torch.testing.assert_close(cs.c_noise, s2.sqrt().log() / 4)
    assert torch.equal(cs.c_noise_cond, torch.zeros(3))
    clean = torch.rand(3, 3, 4, 4) * 2 - 1
    noisy = clean + torch.randn_like(clean)
    target = obj.target(clean, noisy, cs)
    torch.testing.assert_close(obj.denoised(noisy, target, cs, quantize=False), clean)
    x = torch.tensor([-2.0, -1.0, 0.999, 0.0, 2.0]).view(1, 1, 1, 5)
    one = obj.conditioners(torch.tensor(1.0))
    q = obj.denoised(x / one.c_skip, torch.zeros_like(x), one)  # D = x exactly
    assert torch.allclose(q.flatten(), torch.tensor([-1.0, -1.0, 254 / 255 * 2 - 1, -1 / 255, 1]))


def test_network_pads_odd_frames_and_checks_inputs():
    den = _denoiser()
    x = torch.randn(2, 3, 13, 22)  # not a multiple of 2: padded, then cropped
    prev = torch.randn(2, 12, 13, 22)
    act = torch.randint(0, 5, (2, 4))
    out = den.denoise(x, torch.full((2,), 1.0), prev, act, quantize=False)
    assert out.shape == x.shape
    net = den.inner_model
    with pytest.raises(ValueError, match="act ids must be in"):
        net.action_embedding(act + 5)
    with pytest.raises(ValueError, match=r"act must be \[B, 4\]"):
        net.action_embedding(act[:, :3])
    with pytest.raises(ValueError, match="obs must be"):
        den.denoise(x, torch.ones(2), prev[:, :9], act)
    with pytest.raises(ValueError, match="num_actions"):
        DiamondNetwork(**TINY)


def test_multi_hot_actions_embed_as_sums_of_rows():
    net = _denoiser().inner_model
    hot = torch.zeros(1, 4, 5, dtype=torch.long)
    hot[0, :, 2] = 1
    hot[0, 1, 4] = 1
    emb = net.act_emb[0].weight
    want = torch.cat([emb[2], emb[2] + emb[4], emb[2], emb[2]])
    torch.testing.assert_close(net.action_embedding(hot)[0], want)
    with pytest.raises(ValueError, match="only 0 and 1"):
        net.action_embedding(hot * 2)


@pytest.mark.parametrize("variant", ["next_frame", "noised_conditioning", "upsampler"])
def test_training_loss_decreases(variant):
    den = _denoiser(
        variant == "upsampler",
        **({"noise_cond_embedding": True} if variant == "noised_conditioning" else {}),
    )
    g = torch.Generator().manual_seed(0)
    n = den.num_steps_conditioning
    frames = torch.randint(0, 256, (2, n + 2, 3, 8, 8), generator=g) / 127.5 - 1
    acts = None if variant == "upsampler" else torch.randint(0, 5, (2, n + 2), generator=g)
    low = frames[..., ::2, ::2] if variant == "upsampler" else None
    mask = torch.ones(2, n + 2, dtype=torch.bool)
    mask[1, -1] = False  # padding: left out of the loss
    opt = torch.optim.Adam(den.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = den.loss(frames, acts, mask, low, generator=torch.Generator().manual_seed(1))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert torch.equal(out.logs["loss_denoising"], out.loss.detach())
    with pytest.raises(ValueError, match="K >= 1"):
        den.loss(frames[:, :n], acts, low_res=low)


def test_sampler_settings_and_schedule():
    sigmas = build_sigmas(3, 2e-3, 5.0, 7, "cpu")
    assert sigmas.dtype == torch.float32 and sigmas[-1] == 0 and len(sigmas) == 4
    assert sigmas[0].item() == pytest.approx(5.0, rel=1e-6)
    assert sigmas[2].item() == pytest.approx(2e-3, rel=1e-5)
    assert DiamondSamplerConfig(s_tmax=float("inf")).s_tmax is None
    with pytest.raises(ValueError, match="order 1 or 2"):
        DiamondSamplerConfig(order=3)
    with pytest.raises(ValueError, match="sigma_min"):
        DiamondSamplerConfig(sigma_min=6.0)


def test_sampler_is_reproducible_and_upsampling_checks_sizes():
    den = _denoiser()
    sampler = DiamondSampler(den, DiamondSamplerConfig(num_steps_denoising=2, s_churn=1.0))
    prev = torch.rand(1, 4, 3, 8, 8) * 2 - 1
    act = torch.randint(0, 5, (1, 4))
    a = sampler.sample(prev, act, torch.Generator().manual_seed(0))
    b = sampler.sample(prev, act, torch.Generator().manual_seed(0))
    assert torch.equal(a.next_obs, b.next_obs) and a.trajectory.shape == (1, 3, 3, 8, 8)
    up = DiamondSampler(_denoiser(upsampler=True), DiamondSamplerConfig(num_steps_denoising=1))
    out = upsample_next_obs(up, torch.zeros(1, 1, 3, 16, 16), a.next_obs)
    assert out.next_obs.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="must be"):
        upsample_next_obs(up, torch.zeros(1, 1, 3, 12, 16), a.next_obs)
    with pytest.raises(ValueError, match="upsampler denoiser"):
        upsample_next_obs(sampler, torch.zeros(1, 1, 3, 16, 16), a.next_obs)
