"""Training: the loss falls on a fixed batch, the reward head learns real rewards, the token
cache trains the same module."""

import sys
from itertools import pairwise
from pathlib import Path

import lightning as L
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import compressive_model, tiny_model

from wmkit.ar_world.lit import ARWorldModelModule, lr_factor
from wmkit.ar_world.token_cache import TokenCacheDataModule, build_token_cache
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyTokenizer, cpu_trainer
from wmkit.core.testing.toy_lit import MovingSquaresDataModule


def _batch():
    data = MovingSquaresDataModule(num_episodes=16, length=6, size=16, batch_size=16)
    data.setup()
    return next(iter(data.train_dataloader()))


def test_loss_falls_and_reward_head_learns_real_rewards():
    batch = _batch()  # moving squares: reward 1 when the square is in the top-left quadrant
    module = ARWorldModelModule(
        tiny_model(ActionSpec.discrete(5), max_frames=6), lr=3e-3, action_dropout=0.0
    )
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    first = {k: v.item() for k, v in module.losses(batch).items()}
    for _ in range(60):
        loss = module.losses(batch, train=True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = {k: v.item() for k, v in module.losses(batch).items()}
    rewards = batch["rewards"]
    assert last["token_ce"] < 0.6 * first["token_ce"]
    assert last["reward_mse"] < 0.5 * rewards.var().item()  # beats predicting the mean


def test_masked_steps_do_not_train_the_reward_and_done_heads():
    """A clip ending on an episode's final observation has a padded last step
    (``step_mask`` False): its reward and done are not targets, its frame still is."""
    batch = _batch()
    batch["dones"] = torch.zeros_like(batch["rewards"])  # moving squares carry no dones
    module = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=6))
    mask = torch.ones_like(batch["rewards"], dtype=torch.bool)
    mask[:, -1] = False
    masked = module.losses({**batch, "step_mask": mask})
    changed = {**batch, "step_mask": mask, "rewards": batch["rewards"].clone(),
               "dones": batch["dones"].clone()}  # fmt: skip
    changed["rewards"][:, -1] += 5.0
    changed["dones"][:, -1] = 1 - changed["dones"][:, -1]
    again = module.losses(changed)
    for key in ("reward_mse", "done_bce", "token_ce"):
        torch.testing.assert_close(masked[key], again[key])
    unmasked = module.losses({**changed, "step_mask": torch.ones_like(mask)})
    assert unmasked["reward_mse"] > masked["reward_mse"] + 1
    assert not torch.isclose(unmasked["done_bce"], masked["done_bce"])
    goal = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=7), goal_prob=1.0)
    assert torch.isfinite(goal.losses({**batch, "step_mask": mask}, train=True)["loss"])


def test_goal_conditioned_batches_train():
    batch = _batch()
    module = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=7), goal_prob=1.0)
    out = module.losses(batch, train=True)
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("compressive", [False, True])
def test_token_noise_corrupts_the_inputs_in_training_only_and_keeps_targets_clean(compressive):
    batch = _batch()
    if compressive:
        model = compressive_model(ActionSpec.discrete(5), max_frames=6).train()
    else:
        model = tiny_model(ActionSpec.discrete(5), max_frames=6)
    module = ARWorldModelModule(model, token_noise=0.3, action_dropout=0.0)
    clean, future = model.encode_clip(batch["frames"])
    seen = []
    forward = model.forward
    model.forward = lambda tokens, actions, null=None, fut=None: (
        seen.append((tokens, fut)) or forward(tokens, actions, null, fut)
    )
    torch.manual_seed(0)
    noisy_loss = module.losses(batch, train=True)["token_ce"]
    clean_loss = module.losses(batch)["token_ce"]
    for got, want in zip(seen[0], (clean, future)):
        if want is not None:
            changed = (got != want).float().mean().item()
            assert 0.1 < changed < 0.3  # 30% redrawn, some to the same id
    assert all(torch.equal(g, w) for g, w in zip(seen[1], (clean, future)) if w is not None)
    model.forward = forward
    torch.manual_seed(0)
    out = model(seen[0][0], batch["actions"], None, seen[0][1])  # the same noisy inputs
    target = (clean[:, 1:] if future is None else future).flatten(2)
    ce = torch.nn.functional.cross_entropy(out.frame_logits.flatten(0, 2), target.flatten())
    torch.testing.assert_close(noisy_loss, ce)  # scored against the clean tokens
    assert not torch.isclose(noisy_loss, clean_loss)
    with pytest.raises(ValueError, match="token_noise"):
        ARWorldModelModule(model, token_noise=1.0)


def test_token_cache_round_trip_and_training(tmp_path):
    data = MovingSquaresDataModule(num_episodes=20, length=6, size=16, batch_size=4)
    tok = ToyTokenizer(patch=4, levels=2)
    path = build_token_cache(tok, data, tmp_path / "cache")
    cached = TokenCacheDataModule(str(path), batch_size=4)
    cached.setup()
    assert cached.action_spec.n == 5
    batch = next(iter(cached.val_dataloader()))
    frames = next(iter(data.val_dataloader()))["frames"]
    assert torch.equal(batch["tokens"], tok.encode(frames).values)
    assert batch["step_mask"].dtype == torch.bool and batch["step_mask"].all()
    module = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=6))
    frame_loss = module.losses({**next(iter(data.val_dataloader()))})["loss"]
    token_loss = module.losses(batch)["loss"]
    torch.testing.assert_close(frame_loss, token_loss)
    trainer = cpu_trainer(fast_dev_run=2)
    trainer.fit(module, cached)


def test_lr_factor_warms_up_then_decays_by_cosine_to_the_floor():
    assert [lr_factor(s, 4, None) for s in (0, 3, 4, 100)] == [0.25, 1.0, 1.0, 1.0]
    assert lr_factor(4, 4, 24) == 1.0
    assert abs(lr_factor(14, 4, 24) - 0.5) < 1e-9  # half way down
    assert lr_factor(24, 4, 24, floor=0.1) == 0.1 and lr_factor(99, 4, 24, floor=0.1) == 0.1
    assert all(lr_factor(s, 0, 10) >= lr_factor(s + 1, 0, 10) for s in range(12))


def test_cosine_schedule_follows_the_trainer_budget(tmp_path):
    module = ARWorldModelModule(
        tiny_model(ActionSpec.discrete(5), max_frames=6), lr=1e-3, warmup_steps=2,
        lr_decay="cosine", min_lr_ratio=0.1,
    )  # fmt: skip
    rates = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    data = MovingSquaresDataModule(num_episodes=8, length=6, size=16, batch_size=4)
    cpu_trainer(max_steps=10, callbacks=[Record()], default_root_dir=tmp_path).fit(module, data)
    assert rates[0] == 0.5e-3 and rates[1] == 1e-3
    assert all(a >= b for a, b in pairwise(rates[1:]))
    assert abs(rates[-1] - 1e-3 * lr_factor(9, 2, 10, 0.1)) < 1e-12 and rates[-1] < 0.2e-3
    with pytest.raises(ValueError, match="lr_decay"):
        ARWorldModelModule(module.model, lr_decay="linear")


def test_token_cache_training_order_is_shuffled_and_resumable(tmp_path):
    data = MovingSquaresDataModule(num_episodes=20, length=6, size=16, batch_size=4)
    path = build_token_cache(ToyTokenizer(patch=4, levels=2), data, tmp_path / "cache")
    cached = TokenCacheDataModule(str(path), batch_size=2, seed=1)
    cached.setup()
    loader = cached.train_dataloader()
    whole = [b["tokens"] for b in loader]
    assert len(whole) >= 3
    loader.load_state_dict({"epoch": 0, "batches": 2})  # a run resumed after two steps
    again = [b["tokens"] for b in loader]
    assert len(again) == len(whole) - 2
    assert all(torch.equal(a, b) for a, b in zip(again, whole[2:], strict=True))
