"""A run resumed from a checkpoint draws the same random numbers, step for step, as an
uninterrupted one (``RandomStateCheckpoint``), and ends with the same weights."""

import random

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.random_state import RandomStateCheckpoint, get_random_state, set_random_state
from wmkit.core.testing import cpu_trainer, moving_squares


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("random_state") / "squares"
    return moving_squares(6, 16, 16, seed=0).save(root)


class Noisy(L.LightningModule):
    """Trains on noisy targets (as a diffusion loss does) and samples in validation."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.noise: list[float] = []

    def training_step(self, batch, batch_idx):
        noise = torch.randn(1) + np.random.rand() + random.random()
        self.noise.append(float(noise))
        return (self.w - batch["frames"].mean() - noise).square().sum()

    def validation_step(self, batch, batch_idx):
        torch.randn(3)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(dataset_dir, root, max_steps, validate, ckpt_path=None, every=None, restore=True):
    L.seed_everything(0, verbose=False)
    data = EpisodeDataModule(
        str(dataset_dir), clip_length=4, batch_size=2, samples_per_epoch=8, seed=0,
        split=(0.7, 0.3, 0.0),
    )  # fmt: skip
    callbacks: list[L.Callback] = [RandomStateCheckpoint()] if restore else []
    if every:
        callbacks.append(ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1))
    module = Noisy()
    cpu_trainer(
        max_steps=max_steps, limit_val_batches=1 if validate else 0, default_root_dir=root,
        callbacks=callbacks, enable_checkpointing=bool(every),
    ).fit(module, data, ckpt_path=ckpt_path)  # fmt: skip
    return module


# 4 batches per epoch: stopped mid-epoch (validating at the epoch ends on both sides of the
# stop), and at an epoch's end with no validation due
@pytest.mark.parametrize(("stop", "validate"), [(6, False), (6, True), (8, False)])
def test_resumed_run_draws_what_an_uninterrupted_one_draws(dataset_dir, tmp_path, stop, validate):
    whole = _fit(dataset_dir, tmp_path / "whole", 11, validate)
    _fit(dataset_dir, tmp_path / "killed", stop, validate, every=stop)
    ckpt = next((tmp_path / "killed").glob(f"*step={stop}.ckpt"))
    torch.load(ckpt, weights_only=True)  # tensors and numbers only
    resumed = _fit(dataset_dir, tmp_path / "resumed", 11, validate, ckpt_path=str(ckpt))
    assert len(whole.noise) == 11 and resumed.noise == whole.noise[stop:]
    assert torch.equal(resumed.w, whole.w)


def test_without_it_a_resumed_run_draws_other_noise(dataset_dir, tmp_path):
    whole = _fit(dataset_dir, tmp_path / "whole", 8, False, restore=False)
    _fit(dataset_dir, tmp_path / "killed", 6, False, every=6, restore=False)
    ckpt = next((tmp_path / "killed").glob("*step=6.ckpt"))
    resumed = _fit(dataset_dir, tmp_path / "resumed", 8, False, ckpt_path=str(ckpt), restore=False)
    assert resumed.noise != whole.noise[6:]


def test_state_round_trips_and_is_checked():
    state = get_random_state()
    first = (torch.rand(2), np.random.rand(2), random.random())
    set_random_state(state)
    again = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]
    with pytest.raises(ValueError, match="missing \\['numpy'\\]"):
        set_random_state({"torch": state["torch"], "python": state["python"]})
