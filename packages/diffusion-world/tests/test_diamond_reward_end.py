"""DIAMOND's reward/termination model loads the released ``rew_end_model.*`` weights strictly
and reproduces the original code's outputs (fixtures made by running eloialonso/diamond; see
the fixtures' README for how, and for the 1e-5 tolerance used here)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from wmkit.core.testing import needs_parity, parity_dir
from wmkit.diffusion_world.diamond.reward_end import DiamondRewardEnd, RewardEndConfig

PARITY = parity_dir("diamond")
ATOL = 1e-5

needs_fixtures = needs_parity("diamond", "atari")


def _tiny(num_actions: int = 4) -> DiamondRewardEnd:
    cfg = RewardEndConfig(
        num_actions=num_actions,
        lstm_dim=8,
        img_size=16,
        cond_channels=8,
        depths=[1, 1],
        channels=[4, 8],
        attn_depths=[0, 1],
    )
    return DiamondRewardEnd(cfg)


def _batch(b: int = 2, t: int = 3, size: int = 16, num_actions: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, t + 1, 3, size, size), generator=g) / 255 * 2 - 1
    act = torch.randint(0, num_actions, (b, t), generator=g)
    return frames[:, :-1], act, frames[:, 1:]


@pytest.fixture(scope="module")
def released() -> tuple[DiamondRewardEnd, dict[str, torch.Tensor]]:
    """The fixture checkpoint's ``rew_end_model.*`` loaded strictly, and the io tensors."""
    state = torch.load(PARITY / "atari" / "agent.pt", map_location="cpu", weights_only=True)
    prefix = "rew_end_model."
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    model = DiamondRewardEnd(RewardEndConfig.from_state_dict(state))
    model.load_state_dict(state, strict=True)
    return model.eval(), load_file(PARITY / "atari" / "io.safetensors")


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@needs_fixtures
def test_config_read_from_fixture_shapes(released) -> None:
    model, _ = released
    assert model.config == RewardEndConfig(
        num_actions=9, lstm_dim=32, cond_channels=16, channels=[16, 16, 16, 16]
    )


@needs_fixtures
def test_released_widths_have_the_released_keys_and_shapes() -> None:
    """At the released widths our parameter names and shapes are exactly the released map."""
    released = json.loads((PARITY / "atari" / "released_shapes.json").read_text())
    prefix = "rew_end_model."
    want = {
        k[len(prefix) :]: list(v)
        for k, v in released["state_dict_shapes"].items()
        if k.startswith(prefix)
    }
    with torch.device("meta"):
        model = DiamondRewardEnd(RewardEndConfig(num_actions=released["num_actions"]))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert RewardEndConfig.from_state_dict(model.state_dict()) == model.config


@needs_fixtures
@torch.no_grad()
def test_all_at_once_and_encoder_match_the_original(released) -> None:
    model, io = released
    frames, act = io["rew_end.frames"], io["rew_end.act"]
    out = model(frames[:, :-1], act, frames[:, 1:])
    _close(out.logits_rew, io["rew_end.all_at_once.logits_rew"])
    _close(out.logits_end, io["rew_end.all_at_once.logits_end"])
    _close(out.state[0], io["rew_end.all_at_once.h"])
    _close(out.state[1], io["rew_end.all_at_once.c"])
    _close(model.encode(frames[:, :-1], act, frames[:, 1:]), io["rew_end.encoder_out"])


@needs_fixtures
@pytest.mark.parametrize("case", ["one_at_a_time", "one_at_a_time_from_state"])
@torch.no_grad()
def test_one_step_at_a_time_matches_the_original(released, case: str) -> None:
    """Four one-step calls with (h, c) carried, from None or from the recorded state."""
    model, io = released
    frames, act = io["rew_end.frames"], io["rew_end.act"]
    state = None
    if case == "one_at_a_time_from_state":
        state = (io[f"rew_end.{case}.h0"], io[f"rew_end.{case}.c0"])
    rew, end, hs, cs = [], [], [], []
    for t in range(act.shape[1]):
        out = model(frames[:, t : t + 1], act[:, t : t + 1], frames[:, t + 1 : t + 2], state)
        state = out.state
        rew.append(out.logits_rew)
        end.append(out.logits_end)
        hs.append(state[0][0])
        cs.append(state[1][0])
    _close(torch.cat(rew, 1), io[f"rew_end.{case}.logits_rew"])
    _close(torch.cat(end, 1), io[f"rew_end.{case}.logits_end"])
    _close(torch.stack(hs, 1), io[f"rew_end.{case}.h"])
    _close(torch.stack(cs, 1), io[f"rew_end.{case}.c"])


@torch.no_grad()
def test_causal_and_stepwise_equals_all_at_once() -> None:
    """Changing a later transition leaves earlier logits bit-identical; stepping equals the
    sequence call."""
    torch.manual_seed(0)
    model = _tiny().eval()
    obs, act, next_obs = _batch()
    full = model(obs, act, next_obs)
    changed = next_obs.clone()
    changed[:, -1] = -changed[:, -1]
    act2 = act.clone()
    act2[:, -1] = (act2[:, -1] + 1) % 4
    later = model(obs, act2, changed)
    assert torch.equal(full.logits_rew[:, :-1], later.logits_rew[:, :-1])
    assert not torch.equal(full.logits_rew[:, -1], later.logits_rew[:, -1])
    state, steps = None, []
    for t in range(obs.shape[1]):
        out = model(obs[:, t : t + 1], act[:, t : t + 1], next_obs[:, t : t + 1], state)
        state = out.state
        steps.append(out.logits_end)
    torch.testing.assert_close(torch.cat(steps, 1), full.logits_end, atol=1e-6, rtol=0)
    torch.testing.assert_close(state[0], full.state[0], atol=1e-6, rtol=0)


def test_sample_is_seeded_and_follows_the_logits() -> None:
    b, t = 64, 5
    logits_rew = torch.full((b, t, 3), -30.0)
    logits_rew[..., 2] = 30.0  # certainly +1
    logits_rew[:, 0] = torch.tensor([30.0, -30.0, -30.0])  # certainly -1 at step 0
    logits_end = torch.zeros(b, t, 2)  # a fair coin
    draw = DiamondRewardEnd.sample
    a = draw(logits_rew, logits_end, torch.Generator().manual_seed(3))
    b_ = draw(logits_rew, logits_end, torch.Generator().manual_seed(3))
    c = draw(logits_rew, logits_end, torch.Generator().manual_seed(4))
    assert torch.equal(a.reward, b_.reward) and torch.equal(a.done, b_.done)
    assert not torch.equal(a.done, c.done)
    assert a.reward.dtype == torch.float32 and a.done.dtype == torch.bool
    assert (a.reward[:, 0] == -1).all() and (a.reward[:, 1:] == 1).all()
    assert 0.3 < a.done.float().mean() < 0.7
    with pytest.raises(ValueError, match="3 classes"):
        draw(logits_end, logits_end)


def test_loss_targets_sign_classes_and_decreases() -> None:
    torch.manual_seed(0)
    model = _tiny()
    obs, act, next_obs = _batch(b=4, t=3)
    reward = torch.tensor([[0.0, 5.0, -0.5]] * 4)
    done = torch.tensor([[0, 0, 1]] * 4)
    # The loss is the cross-entropy of sign(r) + 1 and of done, nothing else.
    out = model(obs, act, next_obs)
    want_rew = torch.nn.functional.cross_entropy(
        out.logits_rew.reshape(-1, 3), torch.tensor([1, 2, 0] * 4)
    )
    got = model.loss(obs, act, next_obs, reward, done)
    torch.testing.assert_close(got.loss_rew, want_rew)
    torch.testing.assert_close(got.loss, got.loss_rew + got.loss_end)
    # A mask drops steps: with only step 2 kept, the end target is always "terminal".
    mask = torch.zeros(4, 3, dtype=torch.bool)
    mask[:, 2] = True
    masked = model.loss(obs, act, next_obs, reward, done, mask)
    want_end = torch.nn.functional.cross_entropy(
        out.logits_end[:, 2], torch.ones(4, dtype=torch.long)
    )
    torch.testing.assert_close(masked.loss_end, want_end)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = model.loss(obs, act, next_obs, reward, done).loss
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.3 * first


def test_bad_inputs_raise_clear_errors() -> None:
    model = _tiny()
    obs, act, next_obs = _batch()
    with pytest.raises(ValueError, match=r"obs must be \[B, T, 3, 16, 16\]"):
        model(obs[:, :, :, :8], act, next_obs[:, :, :, :8])
    with pytest.raises(ValueError, match="integer action indices"):
        model(obs, act.float(), next_obs)
    with pytest.raises(ValueError, match=r"act must be in \[0, 4\)"):
        model(obs, act + 4, next_obs)
    with pytest.raises(ValueError, match="state must be"):
        model(obs, act, next_obs, (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match="mask selects no step"):
        model.loss(
            obs, act, next_obs, torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3).bool()
        )
    with pytest.raises(ValueError, match="img_size must be divisible"):
        RewardEndConfig(num_actions=4, img_size=30)
    with pytest.raises(ValueError, match="missing"):
        RewardEndConfig.from_state_dict({"act_emb.weight": torch.zeros(4, 8)})
