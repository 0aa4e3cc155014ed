"""The heads trained on frames the model generates (``generated_head_losses``,
``DiffusionForcingModule(generated_head_weight=...)``): ``sample_frame`` is exactly what
``step`` generates one step after ``reset`` on the same real past, the losses are the ones
``step``'s outputs would score, no gradient reaches the diffusion network, and heads trained
this way predict better on generated frames."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.diffusion_world.lit import DiffusionForcingModule

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model

SPEC = ActionSpec.discrete(5)


def _data(n: int, seed: int) -> dict[str, torch.Tensor]:
    eps = moving_squares(num_episodes=n, length=6, size=16, seed=seed)
    frames = to_float_video(eps.frames)
    dones = torch.zeros(n, 6)
    dones[:, :-1] = (frames[:, 1:, :, -1].amax(dim=(2, 3)) > -0.8).float()
    return {
        "frames": frames,
        "actions": torch.from_numpy(eps.actions),
        "rewards": torch.from_numpy(eps.rewards),
        "dones": dones,
    }


def _model(**kwargs) -> DiffusionWorldModel:
    torch.manual_seed(0)
    options = {"objective": "flow", "residual": True, "num_sampling_steps": 1, "reward_hidden": 16}
    options.update(kwargs)
    return flat_model(SPEC, context_window=3, reward_head=True, done_head=True, **options)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"carry_history": True},
        {"residual": False, "objective": "ddpm", "num_sampling_steps": 2},
    ],
    ids=["residual", "carried", "plain-ddpm"],
)
@pytest.mark.parametrize("index", [1, 2, 4])  # 4: the past is longer than the window
def test_sample_frame_is_what_step_generates_after_reset_on_the_real_past(options, index):
    data = _data(2, seed=0)
    model = _model(**options).eval()
    with torch.no_grad():  # a trained-looking network: the zero-initialised output is too easy
        for p in model.network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    frames, actions = data["frames"], data["actions"]
    torch.manual_seed(3)
    sampled = model.sample_frame(frames, actions, index)
    torch.manual_seed(3)
    state = model.reset(frames[:, :index], actions[:, : index - 1] if index > 1 else None)
    out = model.step(state, actions[:, index - 1])
    assert sampled.shape == (2, 3, 16, 16)
    torch.testing.assert_close(sampled.clamp(-1, 1), out.frame)

    # the losses are those of step's own reward and done on the same sample
    torch.manual_seed(3)
    losses = model.generated_head_losses(
        frames, actions, data["rewards"], data["dones"], index=index
    )
    assert set(losses) == {"reward_mse", "done_bce"}
    torch.testing.assert_close(
        losses["reward_mse"], F.mse_loss(out.reward, data["rewards"][:, index - 1])
    )
    with torch.no_grad():
        logits = model.done_head(frames[:, index - 1], out.frame, actions[:, index - 1])
    bce = F.binary_cross_entropy_with_logits(logits, data["dones"][:, index - 1])
    torch.testing.assert_close(losses["done_bce"], bce)


def test_generated_head_losses_train_the_heads_only():
    data = _data(4, seed=0)
    model = _model()
    losses = model.generated_head_losses(data["frames"], data["actions"], data["rewards"])
    assert set(losses) == {"reward_mse"}  # no dones given: no done loss
    losses["reward_mse"].backward()
    assert all(p.grad is None for p in model.network.parameters())
    assert all(p.grad is None for p in model.done_head.parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.reward_head.parameters()
    )
    assert model.generated_head_losses(data["frames"], data["actions"]) == {}


def _one_step_reward_mse(model: DiffusionWorldModel, data: dict[str, torch.Tensor]) -> float:
    """Reward MSE of ``step`` one step from every real past of 1 to 4 frames."""
    frames, actions, rewards = data["frames"], data["actions"], data["rewards"]
    errors = []
    for k in range(1, 5):
        state = model.reset(frames[:, :k], actions[:, : k - 1] if k > 1 else None)
        out = model.step(state, actions[:, k - 1])
        errors.append((out.reward - rewards[:, k - 1]).square().mean())
    return torch.stack(errors).mean().item()


def test_heads_trained_on_generated_frames_predict_better_on_them():
    """An untrained residual model generates copy-last-frame, so the real next frame's
    square position, which the reward reads, is never in what the head sees in ``step``.
    Trained on generated frames too, the head learns it from the previous frame and the
    action instead."""
    train, held = _data(60, seed=0), _data(32, seed=7)
    scores = {}
    for weight in (0.0, 4.0):
        model = _model(reward_hidden=32)
        opt = torch.optim.AdamW(model.reward_head.parameters(), lr=3e-3)
        for _ in range(150):
            loss = model.reward_loss(train["frames"], train["actions"], train["rewards"])
            if weight:
                generated = model.generated_head_losses(
                    train["frames"], train["actions"], train["rewards"]
                )
                loss = loss + weight * generated["reward_mse"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            torch.manual_seed(0)
            scores[weight] = _one_step_reward_mse(model.eval(), held)
    always_zero = held["rewards"][:, :4].square().mean().item()
    assert scores[4.0] < 0.75 * scores[0.0] and scores[0.0] < always_zero


def test_lit_adds_the_weighted_generated_head_losses_and_leaves_the_diffusion_draws_alone():
    data = _data(4, seed=0)
    model = _model()
    plain = DiffusionForcingModule(model, reward_weight=2.0, done_weight=0.5)
    module = DiffusionForcingModule(
        model, reward_weight=2.0, done_weight=0.5, generated_head_weight=3.0
    )
    logs = {plain: [], module: []}
    losses = {plain: [], module: []}
    for m in (plain, module):
        m.log_dict = lambda d, m=m, **kw: logs[m].append(dict(d))
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            losses[m] = [m.training_step(data, i) for i in range(2)]
    for step in range(2):
        generated = logs[module][step]
        extra = 3.0 * (
            2.0 * generated["train/reward_mse_generated"]
            + 0.5 * generated["train/done_bce_generated"]
        )
        torch.testing.assert_close(losses[module][step], losses[plain][step] + extra)
        # the generated frames draw from their own stream: the diffusion loss is unchanged,
        # at the first step and after it
        torch.testing.assert_close(
            generated["train/diffusion_loss"], logs[plain][step]["train/diffusion_loss"]
        )


def test_generated_head_settings_fail_clearly():
    data = _data(2, seed=0)
    model = _model()
    with pytest.raises(ValueError, match="generated_head_weight must be >= 0"):
        DiffusionForcingModule(model, generated_head_weight=-1.0)
    with pytest.raises(ValueError, match=r"index must be in \[1, 5\]"):
        model.sample_frame(data["frames"], data["actions"], 6)
    with pytest.raises(ValueError, match=r"index must be in \[1, 5\]"):
        model.sample_frame(data["frames"], data["actions"], 0)
    with pytest.raises(ValueError, match="actions must be"):
        model.sample_frame(data["frames"], data["actions"][:, :2], 4)
    with pytest.raises(ValueError, match="rewards must be"):
        model.generated_head_losses(data["frames"], data["actions"], data["rewards"][:, :3])
    with pytest.raises(ValueError, match="clips of >= 2 frames"):
        model.generated_head_losses(data["frames"][:, :1], data["actions"][:, :1])
