"""A training run killed mid-epoch and resumed from its checkpoint trains on the same clips,
step for step, as an uninterrupted run (``ResumableLoader``)."""

import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.data.resumable_loader import ResumableLoader, ResumableShuffleSampler
from wmkit.core.testing import cpu_trainer, moving_squares


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return moving_squares(6, 16, 16, seed=0).save(tmp_path_factory.mktemp("resume") / "squares")


class Spy(L.LightningModule):
    """Records the clips of every training step; its weight follows them."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(tuple(zip(batch["episode"].tolist(), batch["start"].tolist())))
        return (self.w - batch["frames"].mean()).square()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(dataset_dir, root, max_steps, ckpt_path=None, every=None):
    data = EpisodeDataModule(
        str(dataset_dir), clip_length=4, batch_size=2, samples_per_epoch=8, seed=0,
        split=(0.7, 0.3, 0.0),
    )  # fmt: skip
    callbacks = [ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1)]
    module = Spy()
    cpu_trainer(
        max_steps=max_steps, limit_val_batches=0, default_root_dir=root,
        callbacks=callbacks if every else [], enable_checkpointing=bool(every),
    ).fit(module, data, ckpt_path=ckpt_path)  # fmt: skip
    return module


@pytest.mark.parametrize("stop", [6, 8])  # mid-epoch (4 batches per epoch), and at its end
def test_resumed_run_draws_what_an_uninterrupted_one_draws(dataset_dir, tmp_path, stop):
    whole = _fit(dataset_dir, tmp_path / "whole", 11)
    _fit(dataset_dir, tmp_path / "killed", stop, every=stop)
    ckpt = next((tmp_path / "killed").glob(f"*step={stop}.ckpt"))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dataloader is\\s+not resumable")
        resumed = _fit(dataset_dir, tmp_path / "resumed", 11, ckpt_path=str(ckpt))
    assert len(whole.seen) == 11 and resumed.seen == whole.seen[stop:]
    assert torch.equal(resumed.w, whole.w)


def test_state_names_the_epoch_and_the_batches_trained_on(dataset_dir):
    data = EpisodeDataModule(str(dataset_dir), clip_length=4, batch_size=2, samples_per_epoch=8)
    data.setup("fit")
    loader = data.train_dataloader()
    assert isinstance(loader, ResumableLoader)
    it = iter(loader)
    next(it), next(it)
    assert loader.state_dict() == {"epoch": 0, "batches": 2}
    first = [b["start"].tolist() for b in loader]
    loader.load_state_dict({"epoch": 0, "batches": 3})
    assert [b["start"].tolist() for b in loader] == first[3:]
    loader.load_state_dict({"epoch": 5, "batches": 3})  # another epoch: nothing skipped
    assert len(list(loader)) == 4


def test_shuffle_sampler_permutes_per_epoch_splits_ranks_and_skips():
    data = list(range(10))
    sampler = ResumableShuffleSampler(data, seed=3)
    first = list(sampler)
    assert sorted(first) == data and first != data  # a permutation
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    sampler.start = 4
    assert list(sampler) == first[4:] and list(sampler) == first  # skips once
    ranks = [list(ResumableShuffleSampler(data, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == data
    loader = ResumableLoader(data, batch_size=3, sampler=ResumableShuffleSampler(data, seed=3))
    whole = [b.tolist() for b in loader]
    loader.load_state_dict({"epoch": 0, "batches": 2})
    assert [b.tolist() for b in loader] == whole[2:]
    with pytest.raises(TypeError, match="sampler with `epoch` and `start`"):
        ResumableLoader(data, batch_size=3)
