"""The termination head (``done_head=True``): it learns held-out terminations, ``step`` and
``rollout`` return them, the Lightning module adds its weighted BCE, save/load keeps it, and
bad input fails clearly."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyTokenizer, WorldModelTests, moving_squares
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.diffusion_world.lit import DiffusionForcingModule

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_helpers import flat_model, write_flat_config

SPEC = ActionSpec.discrete(5)


def _episodes(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Moving squares where an episode *terminates* when the square reaches the bottom edge:
    done ``t`` is 1 where frame ``t + 1`` has the square in its last row (14% of steps)."""
    eps = moving_squares(num_episodes=n, length=6, size=16, seed=seed)
    frames = to_float_video(eps.frames)  # [N, T, 3, 16, 16]
    dones = torch.zeros(n, 6)
    dones[:, :-1] = (frames[:, 1:, :, -1].amax(dim=(2, 3)) > -0.8).float()
    return {"frames": frames, "actions": torch.from_numpy(eps.actions), "dones": dones}


def _model(**kwargs) -> DiffusionWorldModel:
    torch.manual_seed(0)
    return flat_model(
        SPEC, objective="flow", residual=True, num_sampling_steps=1, context_window=3,
        done_head=True, reward_hidden=16, **kwargs,
    )  # fmt: skip


def _train_done_head(model: DiffusionWorldModel, data: dict, steps: int, lr: float) -> None:
    opt = torch.optim.AdamW(model.done_head.parameters(), lr=lr)
    for _ in range(steps):
        loss = model.done_loss(data["frames"], data["actions"], data["dones"])
        opt.zero_grad()
        loss.backward()
        opt.step()


class TestWithDoneHead(WorldModelTests):
    def make_model(self):
        return _model(reward_head=True)

    def make_inputs(self):
        data = _episodes(2, seed=0)
        return data["frames"][:, :2], data["actions"][:, 1:4]


def test_done_head_learns_held_out_terminations():
    train, held = _episodes(60, seed=0), _episodes(16, seed=7)
    model = _model()
    _train_done_head(model, train, steps=150, lr=3e-3)
    target = held["dones"][:, :-1]
    rate = target.mean()
    assert 0.05 < rate < 0.5
    with torch.no_grad():
        bce = model.done_loss(held["frames"], held["actions"], held["dones"]).item()
    base = F.binary_cross_entropy(rate.expand_as(target), target).item()  # the base rate
    assert bce < 0.3 * base

    # step and rollout return the terminations of the transitions they generate
    model.eval()
    state = model.reset(held["frames"][:, :2])
    out = model.step(state, held["actions"][:, 1])
    assert out.done.shape == (16,) and out.done.dtype == torch.float32
    assert set(out.done.unique().tolist()) <= {0.0, 1.0}
    rollout = model.rollout(held["frames"][:, :2], held["actions"][:, 1:4])
    assert rollout.dones.shape == (16, 3) and rollout.rewards is None


def test_lit_adds_the_weighted_done_bce_and_logs_it():
    data = _episodes(4, seed=0)
    model = _model(reward_head=True)
    module = DiffusionForcingModule(model, reward_weight=2.5, done_weight=0.5)
    rewards = torch.rand(4, 6)
    logged = {}
    module.log_dict = lambda d, **kw: logged.update(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        total = module.training_step({**data, "rewards": rewards}, 0)
        torch.manual_seed(0)
        diffusion = module.training_step({"frames": data["frames"], "actions": data["actions"]}, 0)
    reward = model.reward_loss(data["frames"], data["actions"], rewards)
    done = model.done_loss(data["frames"], data["actions"], data["dones"])
    assert torch.allclose(total, diffusion + 2.5 * reward + 0.5 * done)
    assert "train/done_bce" in logged


def test_a_latent_model_encodes_each_batch_once_for_the_loss_and_both_heads(tmp_path):
    data = _episodes(2, seed=0)
    torch.manual_seed(0)
    model = flat_model(
        SPEC, image_size=4, tokenizer=None, objective="edm", residual=True,
        network_kwargs={"patch_size": 1}, reward_head=True, done_head=True, reward_hidden=8,
    )  # fmt: skip
    model.set_tokenizer(ToyTokenizer(patch=4, channels=3, kind="continuous"))
    calls = []
    encode = model._tokenizer.encode
    model._tokenizer.encode = lambda video: calls.append(video.shape) or encode(video)
    module = DiffusionForcingModule(model)
    batch = {**data, "rewards": torch.rand(2, 6)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(batch, 0)
    assert len(calls) == 1 and torch.isfinite(loss)
    latents = model.encode(data["frames"])
    with pytest.raises(ValueError, match="latents must be"):
        model.done_loss(data["frames"], data["actions"], data["dones"], latents[:, :3])
    torch.testing.assert_close(
        model.reward_loss(data["frames"], data["actions"], batch["rewards"], latents),
        model.reward_loss(data["frames"], data["actions"], batch["rewards"]),
    )


def test_done_head_save_load_round_trip_and_configs_without_it_load(tmp_path):
    data = _episodes(2, seed=0)
    model = _model().eval()
    with torch.no_grad():
        for p in model.done_head.parameters():
            p.normal_(0, 0.5)  # outputs on both sides of 0
    model.save_pretrained(tmp_path / "m")
    again = DiffusionWorldModel.from_pretrained(tmp_path / "m").eval()
    outs = []
    for m in (model, again):
        torch.manual_seed(0)
        outs.append(m.rollout(data["frames"][:, :2], data["actions"][:, 1:5]))
    assert torch.equal(outs[0].dones, outs[1].dones)

    flat_model(SPEC).save_pretrained(tmp_path / "old")
    write_flat_config(tmp_path / "old", network="dit", reward_head=False)  # no done_head
    old = DiffusionWorldModel.from_pretrained(tmp_path / "old").eval()
    assert old.done_head is None
    assert old.rollout(data["frames"][:, :2], data["actions"][:, 1:3]).dones is None


def test_done_settings_fail_clearly():
    data = _episodes(2, seed=0)
    frames, actions = data["frames"], data["actions"]
    with pytest.raises(ValueError, match="done_head=True"):
        flat_model(SPEC).done_loss(frames, actions, data["dones"])
    model = _model()
    with pytest.raises(ValueError, match="0 or 1"):
        model.done_loss(frames, actions, torch.full((2, 6), 0.5))
    with pytest.raises(ValueError, match="dones must be"):
        model.done_loss(frames, actions, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="done_weight"):
        DiffusionForcingModule(model, done_weight=-1.0)
    with pytest.raises(ValueError, match="the done head needs batch"):
        DiffusionForcingModule(model).training_step({"frames": frames, "dones": data["dones"]}, 0)


def _recorded(root, n: int, seed: int):
    """``n`` recorded episodes that each end in a termination after their last action, whose
    final observation (a black "game over" screen) is stored."""
    from wmkit.core.data.episode_store import EpisodeWriter

    eps = moving_squares(num_episodes=n, length=8, size=16, seed=seed)
    writer = EpisodeWriter(root, action_spec=SPEC, fps=10, env="squares")
    for i in range(n):
        dones = torch.zeros(8, dtype=torch.bool)
        dones[-1] = True
        writer.add_episode(eps.frames[i], eps.actions[i], dones=dones.numpy(),
                           final_frame=eps.frames[i, 0] * 0)  # fmt: skip
    writer.close()


def _clips(root, final_frames: bool) -> dict[str, torch.Tensor]:
    from wmkit.core.data.clip_dataset import ClipDataset
    from wmkit.core.data.episode_store import EpisodeStore

    data = ClipDataset(EpisodeStore(root), clip_length=3, mode="sequential", stride=1,
                       final_frames=final_frames)  # fmt: skip
    items = [data[i] for i in range(len(data))]
    return {k: torch.stack([it[k] for it in items]) for k in ("frames", "actions", "dones")}


def test_terminations_train_through_recorded_final_observations(tmp_path):
    """The last transition of an episode, where its termination sits, reaches the head only
    through the stored final observation: without it no clip has a done target."""
    _recorded(tmp_path / "train", 12, seed=0)
    _recorded(tmp_path / "held", 6, seed=5)
    model = _model()
    without = _clips(tmp_path / "train", final_frames=False)
    _, _, target = model._transition_outputs(
        "dones", without["frames"], without["actions"], without["dones"]
    )
    assert target.sum() == 0  # the done's next frame was never in a clip
    train = _clips(tmp_path / "train", final_frames=True)
    _train_done_head(model, train, steps=100, lr=1e-2)
    held = _clips(tmp_path / "held", final_frames=True)
    with torch.no_grad():
        _, logits, target = model._transition_outputs(
            "dones", held["frames"], held["actions"], held["dones"]
        )
    assert target.sum() == 6  # one termination per held-out episode
    assert torch.equal(logits > 0, target.bool())  # each found, no false alarm
