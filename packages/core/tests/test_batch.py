"""`Batch`: built from collated dicts with checks that name the field, moved to a device by
Lightning like a dict, and read by a LightningModule whichever of the two a loader yields."""

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import move_data_to_device as pl_move_data_to_device
from torch.utils.data import DataLoader

from wmkit.core import Batch
from wmkit.core.testing import ToyWorldModel, check_rejects, cpu_trainer
from wmkit.core.testing.toy_lit import MovingSquaresDataModule, ToyWorldModelModule


def _dict(b: int = 2, t: int = 4) -> dict:
    return {
        "frames": torch.rand(b, t, 3, 8, 8) * 2 - 1,
        "actions": torch.randint(0, 5, (b, t)),
        "rewards": torch.rand(b, t),
        "dones": torch.zeros(b, t),
        "step_mask": torch.ones(b, t, dtype=torch.bool),
        "episode": torch.arange(b),
    }


def test_from_dict_keeps_the_fields_and_the_rest():
    raw = _dict()
    batch = Batch.from_dict(raw, require=("frames", "actions"))
    assert batch.frames is raw["frames"] and batch.actions is raw["actions"]
    assert batch.tokens is None and set(batch.extra) == {"episode"}
    assert (batch.size, batch.steps) == (2, 4)
    assert batch.to_dict().keys() == raw.keys()
    assert Batch.coerce(batch) is batch
    ids = {"tokens": torch.zeros(2, 3, 4, 4, dtype=torch.long),
           "future_tokens": torch.zeros(2, 2, 2, 2, dtype=torch.long)}  # fmt: skip
    tokens = Batch.from_dict({**ids, "actions": torch.zeros(2, 5), "rewards": torch.zeros(2, 5)})
    assert tokens.steps == 5 and tokens.frames is None


def test_bad_batches_are_refused_naming_the_field():
    raw = _dict()
    check_rejects(lambda: Batch.from_dict({"frames": raw["frames"]}, require=("actions",)),
                  match="no ['actions']")  # fmt: skip
    check_rejects(lambda: Batch.from_dict({"actions": raw["actions"]}), match="frames or tokens")
    check_rejects(lambda: Batch.from_dict({**raw, "frames": raw["frames"][0]}), match="frames")
    uint8 = (raw["frames"] * 127).to(torch.uint8)
    check_rejects(lambda: Batch.from_dict({**raw, "frames": uint8}), match="floating point")
    check_rejects(lambda: Batch.from_dict({**raw, "actions": raw["actions"][:1]}), match="B = 2")
    check_rejects(lambda: Batch.from_dict({**raw, "rewards": raw["rewards"][..., None]}),
                  match="rewards must be [B, T]")  # fmt: skip
    check_rejects(lambda: Batch.from_dict({"tokens": torch.rand(2, 3, 4, 4)}), match="integer")
    with pytest.raises(TypeError, match="dict or a Batch"):
        Batch.coerce([raw["frames"]])
    with pytest.raises(TypeError, match="actions must be a tensor"):
        Batch.from_dict({**raw, "actions": [0, 1]})


def test_lightning_moves_a_batch_like_a_dict():
    batch = Batch.from_dict(_dict())
    for move in (move_data_to_device, pl_move_data_to_device):
        moved = move(batch, torch.device("meta"))
        assert isinstance(moved, Batch)
        for name in ("frames", "actions", "rewards", "dones", "step_mask"):
            assert getattr(moved, name).device.type == "meta", name
        assert moved.extra["episode"].device.type == "meta"
        assert batch.frames.device.type == "cpu"  # the original is left where it was
    own = batch.to("meta")
    assert own.frames.is_meta and own.extra["episode"].is_meta and not batch.frames.is_meta


def test_a_module_trains_on_batches_and_on_dicts(tmp_path):
    data = MovingSquaresDataModule(num_episodes=8, length=4, size=16, batch_size=4)
    data.setup("fit")

    def as_batch(items):
        return Batch.from_dict(MovingSquaresDataModule._collate(items))

    for collate in (MovingSquaresDataModule._collate, as_batch):
        torch.manual_seed(0)
        module = ToyWorldModelModule(ToyWorldModel(data.action_spec, hidden=8))
        loader = DataLoader(data.splits["train"], batch_size=4, collate_fn=collate)
        first = next(iter(loader))
        assert isinstance(first, Batch if collate is as_batch else dict)
        trainer = cpu_trainer(max_steps=2, default_root_dir=tmp_path)
        trainer.fit(module, loader)
        assert trainer.global_step == 2
