"""Flow matching (``objective="flow"``) and the reward head (``reward_head=True``):
conformance, per-frame noise levels, causality, training, sampling at 1 and 4 steps,
guidance, save/load (and 0.1.0 configs), errors."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model, randomised, write_flat_config

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import (
    WorldModelTests,
    check_causality,
    check_loss_decreases,
    moving_squares,
)
from wmkit.core.testing.toy_lit import MovingSquaresDataModule
from wmkit.diffusion_world import (
    DiffusionWorldModel,
    flow_noise,
    gaussian_velocity_skip,
    guided_prediction,
)
from wmkit.diffusion_world.lit import DiffusionForcingModule
from wmkit.diffusion_world.objectives import DDPMObjective, FlowObjective

SPEC = ActionSpec.discrete(5)


def _data(size: int = 16, length: int = 6, n: int = 2):
    eps = moving_squares(num_episodes=n, length=length, size=size)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions)


class TestFlow(WorldModelTests):
    def make_model(self):
        return flat_model(
            SPEC, objective="flow", num_sampling_steps=4, guidance_scale=1.5, context_window=4
        )

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:4]


class TestResidualFlowWithRewards(WorldModelTests):
    def make_model(self):
        return flat_model(
            SPEC, objective="flow", residual=True, sigma_data=0.1, num_sampling_steps=1,
            reward_head=True, reward_hidden=8, context_window=3, flow_shift=3.0,
        )  # fmt: skip

    def make_inputs(self):
        frames, actions = _data()
        return frames[:, :2], actions[:, 1:4]


def test_flow_forward_process_is_diffusers_and_one_euler_step_lands_on_x0():
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    idx = torch.tensor([0, 100, 500, 999])
    ours = flow_noise(x[:, None], noise[:, None], sched.sigmas[idx][:, None])[:, 0]
    assert torch.allclose(ours, sched.scale_noise(x, sched.timesteps[idx], noise), atol=1e-6)
    sched.set_timesteps(1)
    assert sched.sigmas.tolist() == [1.0, 0.0]
    step = sched.step(noise - x, sched.timesteps[0], noise).prev_sample  # the true velocity
    assert torch.allclose(step, x, atol=1e-6)
    skip = gaussian_velocity_skip(torch.tensor([0.0, 1.0]), 0.3)
    assert torch.allclose(skip, torch.tensor([-1.0, 1.0]))


def test_flow_per_frame_noise_levels_reach_the_network():
    frames, actions = _data(n=4)
    model = flat_model(SPEC, objective="flow", clean_history_prob=0.3)
    seen = {}
    model.network.register_forward_pre_hook(lambda m, a: seen.update(x=a[0], lv=a[1]))
    torch.manual_seed(0)
    out = model.loss(frames, actions)
    t = out.timesteps  # [B, T] in [0, 1]
    assert t.shape == (4, 6) and t.min() >= 0 and t.max() <= 1
    assert torch.allclose(seen["lv"], t * 1000)  # the network's timesteps, per frame
    noisy = t > 0
    assert (~noisy).any() and ((t != t[:, :1]) & noisy).any(dim=1).all()
    assert torch.equal(seen["x"][~noisy], frames[~noisy])  # t = 0: the clean frame exactly
    # the network's prediction changes with one frame's level only from that frame on
    model = randomised(model).eval()
    x = torch.randn(1, 3, 3, 16, 16)
    cond = model.frame_conditions(None, 3, 1)
    with torch.no_grad():
        a = model(x, torch.tensor([[0.0, 0.2, 0.9]]), cond)
        b = model(x, torch.tensor([[0.0, 0.7, 0.9]]), cond)
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])


@pytest.mark.parametrize("residual", [False, True])
def test_flow_denoiser_is_strictly_causal(residual):
    model = randomised(flat_model(SPEC, objective="flow", residual=residual)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 16, 16, generator=g)
    levels = torch.tensor([[0.0, 0.0, 0.3, 0.5, 0.9]] * 2)
    cond = torch.randn(2, 5, model.network.cond_dim, generator=g)

    def base(v):
        return model.denoiser.bases(v) if residual else None

    with torch.no_grad():
        check_causality(lambda v: model(v, levels, cond, base=base(v)), x, what="frames")
        check_causality(lambda s: model(x, s, cond, base=base(x)), levels, what="levels")
        check_causality(lambda c: model(x, levels, c, base=base(x)), cond, what="conditions")


@pytest.mark.parametrize("residual", [False, True])
def test_flow_loss_decreases_on_a_real_batch(residual):
    torch.manual_seed(0)
    frames, actions = _data(n=8)
    model = flat_model(SPEC, objective="flow", residual=residual, sigma_data=0.25)
    check_loss_decreases(model, lambda: model.loss(frames, actions).loss, steps=25)


@pytest.mark.parametrize("steps", [1, 4])
def test_flow_sampling_runs_at_1_and_4_steps(steps):
    frames, actions = _data()
    model = randomised(flat_model(SPEC, objective="flow", num_sampling_steps=steps))
    calls = []
    model.network.register_forward_pre_hook(lambda m, a: calls.append(a[1][:, -1].clone()))
    step_alone = model.network.forward_next  # several steps: the history cache's entry point

    def forward_next(x, levels, *rest):
        calls.append(levels[:, -1].clone())
        return step_alone(x, levels, *rest)

    model.network.forward_next = forward_next
    out = model.eval().rollout(frames[:, :2], actions[:, 1:3]).frames
    assert out.shape == (2, 2, 3, 16, 16) and out.isfinite().all() and out.abs().max() <= 1
    assert len(calls) == 2 * steps  # one network call per Euler step per frame
    first = torch.stack([c[0] for c in calls[:steps]])
    assert first[0] == 1000 and (first.diff() < 0).all()  # from pure noise, downwards

    # an untrained residual model is copy-last-frame: exactly at 1 step; at 4 steps the
    # Gaussian-data velocity samples changes of std ~ sigma_data around it
    res = flat_model(
        SPEC, objective="flow", residual=True, sigma_data=0.05, num_sampling_steps=steps
    ).eval()
    torch.manual_seed(0)
    out = res.rollout(frames[:, :3], actions[:, 2:5]).frames
    previous = torch.cat([frames[:, 2:3], out[:, :-1]], dim=1)
    change = (out - previous).abs()
    assert change.max() == 0 if steps == 1 else change.mean() < 0.1


def test_flow_guidance_scale_zero_equals_the_unconditional_path():
    model = randomised(flat_model(SPEC, objective="flow", residual=True)).eval()
    x = torch.randn(2, 3, 3, 16, 16)
    ts = torch.tensor([[0.0, 0.0, 0.6]] * 2)
    base = model.denoiser.bases(x)
    cond = model.frame_conditions(torch.tensor([[1, 2, 3]] * 2), 3, 2)
    uncond = cond.clone()
    uncond[:, -1] = model.action_embed.null

    def denoise(v, s, c):
        return model(v, s, c, base=base.repeat(v.shape[0] // 2, 1, 1, 1, 1))

    with torch.no_grad():
        guided0 = guided_prediction(denoise, x, ts, cond, uncond, 0.0)
        assert torch.allclose(guided0, denoise(x, ts, uncond)[:, -1], atol=1e-6)
        guided3 = guided_prediction(denoise, x, ts, cond, uncond, 3.0)
        assert not torch.allclose(guided3, denoise(x, ts, cond)[:, -1], atol=1e-4)

    frames, _ = _data()
    for scale, same in ((0.0, True), (2.0, False)):
        model.sampler.guidance_scale = scale
        outs = []
        for a in (1, 4):
            torch.manual_seed(0)
            outs.append(model.rollout(frames[:, :2], torch.full((2, 1), a)).frames)
        assert torch.allclose(outs[0], outs[1], atol=1e-6) == same


def test_flow_and_reward_head_save_load_round_trip_and_old_configs_load(tmp_path):
    frames, actions = _data()
    model = randomised(
        flat_model(
            SPEC,
            objective="flow",
            residual=True,
            sigma_data=0.2,
            flow_shift=2.0,
            reward_head=True,
            num_sampling_steps=2,
        )
    ).eval()
    model.save_pretrained(tmp_path / "m")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "m").eval()
    objective = again.denoiser.objective
    assert (type(objective), again.residual, objective.sigma_data) == (FlowObjective, True, 0.2)
    assert again.sampler.scheduler.config.shift == 2.0 and again.reward_head is not None
    outs = []
    for m in (model, again):
        torch.manual_seed(0)
        outs.append(m.rollout(frames[:, :2], actions[:, 1:4]))
    assert torch.equal(outs[0].frames, outs[1].frames)
    assert outs[0].rewards.shape == (2, 3) and torch.equal(outs[0].rewards, outs[1].rewards)

    # a 0.1.0 config, saved before these options existed, loads as before (no reward head,
    # ddpm)
    flat_model(SPEC).save_pretrained(tmp_path / "old")
    write_flat_config(tmp_path / "old", network="dit", size="tiny", num_sampling_steps=4)
    old = DiffusionWorldModel.from_pretrained(tmp_path / "old").eval()
    assert old.reward_head is None and isinstance(old.denoiser.objective, DDPMObjective)
    assert old.rollout(frames[:, :2], actions[:, 1:3]).rewards is None


def test_reward_head_learns_moving_squares_rewards_better_than_the_mean():
    torch.manual_seed(0)
    data = MovingSquaresDataModule(num_episodes=60, length=6, size=16, batch_size=48)
    data.setup()
    train = next(iter(data.train_dataloader()))
    held = moving_squares(num_episodes=16, length=6, size=16, seed=7)
    frames, actions = to_float_video(held.frames), torch.from_numpy(held.actions)
    rewards = torch.from_numpy(held.rewards)
    model = flat_model(SPEC, objective="flow", reward_head=True, reward_hidden=16)
    opt = torch.optim.AdamW(model.reward_head.parameters(), lr=3e-3)  # the lit term: below
    for _ in range(120):
        loss = model.reward_loss(train["frames"], train["actions"], train["rewards"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = model.reward_loss(frames, actions, rewards).item()
    mean_mse = (rewards[:, :-1] - train["rewards"][:, :-1].mean()).square().mean().item()
    assert mean_mse > 0.1 and mse < 0.2 * mean_mse  # held-out episodes

    # step returns the reward of the transition it generates
    state = model.eval().reset(frames[:, :2])
    out = model.step(state, actions[:, 1])
    assert out.reward.shape == (16,) and out.reward.dtype == torch.float32


def test_lit_adds_the_weighted_reward_mse():
    frames, actions = _data(n=4)
    batch = {"frames": frames, "actions": actions, "rewards": torch.rand(4, 6)}
    model = flat_model(SPEC, objective="flow", reward_head=True)
    module = DiffusionForcingModule(model, reward_weight=2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        total = module.training_step(batch, 0)
        torch.manual_seed(0)
        diffusion = module.training_step({"frames": frames, "actions": actions}, 0)
    reward = model.reward_loss(frames, actions, batch["rewards"])
    assert torch.allclose(total, diffusion + 2.5 * reward)


def test_flow_and_reward_settings_fail_clearly():
    frames, actions = _data()
    with pytest.raises(ValueError, match="flow_shift"):
        flat_model(SPEC, objective="flow", flow_shift=0.0)
    with pytest.raises(ValueError, match="history_noise_level"):
        flat_model(SPEC, objective="flow", history_noise_level=10)
    with pytest.raises(ValueError, match="num_steps"):
        flat_model(SPEC, objective="flow", num_sampling_steps=0)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        flat_model(SPEC, objective="flow", num_train_timesteps=0)
    with pytest.raises(ValueError, match="reward_hidden"):
        flat_model(SPEC, reward_head=True, reward_hidden=0)
    with pytest.raises(ValueError, match="reward_weight"):
        DiffusionForcingModule(flat_model(SPEC), reward_weight=-1.0)
    with pytest.raises(ValueError, match="reward_head=True"):
        flat_model(SPEC).reward_loss(frames, actions, torch.zeros(2, 6))
    model = flat_model(SPEC, reward_head=True)
    with pytest.raises(ValueError, match="rewards must be"):
        model.reward_loss(frames, actions, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="actions must be"):
        model.reward_loss(frames, actions[:, :2], torch.zeros(2, 6))
    with pytest.raises(ValueError, match=">= 2 frames"):
        model.reward_loss(frames[:, :1], actions[:, :1], torch.zeros(2, 1))
