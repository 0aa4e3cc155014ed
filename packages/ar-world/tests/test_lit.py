"""Training: the loss falls on a fixed batch, the reward head learns real rewards, the token
cache trains the same module."""

import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model

from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.ar_world.token_cache import TokenCacheDataModule, build_token_cache
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyTokenizer
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


def test_goal_conditioned_batches_train():
    batch = _batch()
    module = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=7), goal_prob=1.0)
    out = module.losses(batch, train=True)
    assert torch.isfinite(out["loss"])


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
    module = ARWorldModelModule(tiny_model(ActionSpec.discrete(5), max_frames=6))
    frame_loss = module.losses({**next(iter(data.val_dataloader()))})["loss"]
    token_loss = module.losses(batch)["loss"]
    torch.testing.assert_close(frame_loss, token_loss)
    trainer = L.Trainer(
        fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, cached)
