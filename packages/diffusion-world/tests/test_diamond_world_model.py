"""DiamondWorldModel: WorldModel conformance (discrete; multi-hot with the upsampling stage;
with a reward/end model), the reward/end model's state carried across steps, padding of
short contexts, training loss, errors."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from wmkit.core import ActionSpec
from wmkit.core.testing import WorldModelTests, check_world_model
from wmkit.diffusion_world.diamond import DIAMOND_NETWORK_SIZES, DiamondWorldModel

TINY = DIAMOND_NETWORK_SIZES["tiny"]
SPEC = ActionSpec.discrete(5)
MULTI = ActionSpec.multi_discrete([2] * 6)
FAST = {"num_steps_denoising": 2}


def _tiny(spec: ActionSpec = SPEC, **kwargs) -> DiamondWorldModel:
    return DiamondWorldModel(spec, network=dict(TINY), sampler=FAST, **kwargs)


def _inputs(spec: ActionSpec = SPEC, size: int = 16, t0: int = 2, steps: int = 3):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, t0, 3, size, size), generator=g) / 127.5 - 1
    return frames, spec.sample((2, steps), generator=g)


class TinyRewEnd(nn.Module):
    """A duck-typed reward/end model: (obs, act, next_obs, state) → (logits_rew, logits_end,
    (h, c)), an LSTM over pooled frame pairs and action embeddings."""

    def __init__(self, num_actions: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(num_actions, 4)
        self.lstm = nn.LSTM(10, 8, batch_first=True)
        self.head = nn.Linear(8, 5)

    def forward(self, obs: Tensor, act: Tensor, next_obs: Tensor, state=None):
        x = torch.cat([obs, next_obs], dim=2).mean((-2, -1))  # [B, T, 6]
        y, hc = self.lstm(torch.cat([x, self.emb(act)], dim=-1), state)
        out = self.head(y)
        return out[..., :3], out[..., 3:], hc


class TestTinyDiamond(WorldModelTests):
    def make_model(self):
        return _tiny()

    def make_inputs(self):
        return _inputs()


class TestMultiHotWithUpsampler(WorldModelTests):
    def make_model(self):
        up = {"network": {**TINY, "num_steps_conditioning": 1}, "factor": 2}
        return DiamondWorldModel(
            MULTI, network={**TINY, "noise_cond_embedding": True},
            sampler={**FAST, "s_cond": 0.005}, upsampler=up,
        )  # fmt: skip

    def make_inputs(self):
        return _inputs(MULTI, size=16)


def test_upsampled_frames_are_full_resolution():
    world = TestMultiHotWithUpsampler().make_model().eval()
    frames, actions = _inputs(MULTI, size=16)
    state = world.reset(frames)
    assert state.obs.shape == (2, 4, 3, 8, 8) and state.frames.shape == (2, 1, 3, 16, 16)
    step = world.step(state, actions[:, 0])
    assert step.frame.shape == (2, 3, 16, 16)
    assert step.state.obs.shape == (2, 4, 3, 8, 8)


def test_reward_end_model_rides_in_the_state():
    torch.manual_seed(0)
    rew_end = TinyRewEnd()
    world = _tiny(reward_end=rew_end).eval()
    frames, actions = _inputs(t0=3, steps=3)
    context_actions = SPEC.sample((2, 2), generator=torch.Generator().manual_seed(5))
    state = world.reset(frames, context_actions)
    assert state.rew_end_state is not None  # burnt in on the 2 context transitions
    obs, acts = [frames[:, -1]], []
    for t in range(3):
        out = world.step(state, actions[:, t])
        assert set(out.reward.tolist()) <= {-1.0, 0.0, 1.0} and set(out.done.tolist()) <= {0, 1}
        obs.append(out.frame)
        acts.append(actions[:, t])
        state = out.state
    # the carried state equals one pass over every transition, context included
    all_obs = torch.cat([frames, torch.stack(obs[1:], 1)], dim=1)
    all_act = torch.cat([context_actions, torch.stack(acts, 1)], dim=1)
    with torch.no_grad():
        *_, (h, c) = rew_end(all_obs[:, :-1], all_act, all_obs[:, 1:], None)
    torch.testing.assert_close(state.rew_end_state[0], h, atol=1e-6, rtol=0)
    torch.testing.assert_close(state.rew_end_state[1], c, atol=1e-6, rtol=0)
    inputs = _inputs()
    check_world_model(world, *inputs, save_load=False)  # rewards and dones [B, T]
    with pytest.raises(TypeError, match="reward_end"):
        world.save_pretrained("unused")


def test_short_and_long_contexts():
    world = _tiny().eval()
    frames, _ = _inputs(t0=1)
    state = world.reset(frames)
    assert torch.equal(state.obs, frames[:, :1].expand(-1, 4, -1, -1, -1))
    assert torch.equal(state.actions, torch.zeros(2, 3, dtype=torch.long))
    frames, _ = _inputs(t0=6)
    acts = SPEC.sample((2, 6), generator=torch.Generator().manual_seed(1))  # T0 actions
    state = world.reset(frames, acts)
    assert torch.equal(state.obs, frames[:, -4:]) and torch.equal(state.actions, acts[:, 2:5])


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    world = _tiny()
    frames, actions = _inputs(t0=6, steps=6)
    opt = torch.optim.Adam(world.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = world.loss(frames, actions, generator=torch.Generator().manual_seed(0)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="discrete actions or multi-hot"):
        DiamondWorldModel(ActionSpec.continuous(2), network=dict(TINY))
    with pytest.raises(ValueError, match="discrete actions or multi-hot"):
        DiamondWorldModel(ActionSpec.multi_discrete([3, 2]), network=dict(TINY))
    world = _tiny().eval()
    frames, actions = _inputs()
    state = world.reset(frames)
    with pytest.raises(ValueError, match="batch size"):
        world.step(state, actions[:1, 0])
    with pytest.raises(ValueError, match="actions must be"):
        world.loss(frames, actions[:, :1])
