"""Lightning pieces for the toy world model: the smallest complete ``wmkit`` stage.

``ToyWorldModelModule`` trains any :class:`~wmkit.core.testing.toys.ToyWorldModel` injected
by YAML on batches from :class:`MovingSquaresDataModule`. Core's tests drive it through
``wmkit.core.stage`` to prove the stage machinery (fit, test, resume, ``--print_config``).
Batches follow the core convention: a dict with ``frames`` ``float [B, T, C, H, W]`` in
[-1, 1], ``actions`` ``[B, T, ...]`` and ``rewards`` ``[B, T]``.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from wmkit.core.batch import Batch
from wmkit.core.testing.moving_squares import moving_squares
from wmkit.core.testing.toys import ToyWorldModel
from wmkit.core.video import to_float_video

__all__ = ["MovingSquaresDataModule", "ToyWorldModelModule"]


class MovingSquaresDataModule(L.LightningDataModule):
    """Moving-squares clips split by episode (80/10/10).

    Args:
        num_episodes: episodes generated.
        length: frames per clip (= per episode).
        size: frame height and width.
        continuous: continuous (dy, dx) actions instead of 5 discrete moves.
        batch_size: clips per batch.
        seed: generation seed.
    """

    def __init__(
        self,
        num_episodes: int = 40,
        length: int = 8,
        size: int = 16,
        continuous: bool = False,
        batch_size: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        eps = moving_squares(
            hp.num_episodes, hp.length, hp.size, continuous=hp.continuous, seed=hp.seed
        )
        self.action_spec = eps.action_spec
        frames = to_float_video(eps.frames)  # [N, T, C, H, W]
        data = (frames, torch.from_numpy(eps.actions), torch.from_numpy(eps.rewards))
        n = hp.num_episodes
        n_val = n_test = max(1, n // 10)
        bounds = {
            "train": (0, n - n_val - n_test),
            "val": (n - n_val - n_test, n - n_test),
            "test": (n - n_test, n),
        }
        self.splits = {k: TensorDataset(*(d[a:b] for d in data)) for k, (a, b) in bounds.items()}

    @staticmethod
    def _collate(items: list[tuple[Tensor, Tensor, Tensor]]) -> dict[str, Tensor]:
        frames, actions, rewards = (torch.stack(x) for x in zip(*items))
        return {"frames": frames, "actions": actions, "rewards": rewards}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            collate_fn=self._collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class ToyWorldModelModule(L.LightningModule):
    """Teacher-forced next-frame MSE (+ reward MSE) for a :class:`ToyWorldModel`.

    Args:
        model: the network (injected; YAML gives its ``class_path`` and ``init_args``).
        lr: AdamW learning rate.
        reward_weight: weight of the reward loss.
    """

    def __init__(self, model: ToyWorldModel, lr: float = 3e-3, reward_weight: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _losses(self, batch: Batch | dict[str, Tensor]) -> dict[str, Tensor]:
        batch = Batch.coerce(batch, require=("frames", "actions", "rewards"))
        frames, actions, rewards = batch.frames, batch.actions, batch.rewards
        pred, reward = self.model(frames[:, :-1], actions[:, :-1])
        target = frames[:, 1:]
        frame_loss = F.mse_loss(pred, target)
        reward_loss = F.mse_loss(reward, rewards[:, :-1].float())
        copy_last = F.mse_loss(frames[:, :-1], target)
        return {
            "loss": frame_loss + self.hparams.reward_weight * reward_loss,
            "frame_mse": frame_loss,
            "reward_mse": reward_loss,
            "copy_last_mse": copy_last,
        }

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self._losses(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        return losses["loss"]

    def validation_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self._losses(batch).items()})

    def test_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> None:
        self.log_dict({f"test/{k}": v for k, v in self._losses(batch).items()})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.hparams.lr)
