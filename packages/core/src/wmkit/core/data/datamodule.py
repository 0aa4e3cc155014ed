"""`EpisodeDataModule`: the LightningDataModule every wmkit stage trains on.

Train clips are random (``RandomClipSampler``: new clips every epoch, split between DDP
ranks); validation and test clips are sequential and non-overlapping, so evaluation covers
each held-out episode once, and Lightning's ``DistributedSampler`` shares them between
ranks. Splits are by episode (``split_episodes``). Batches are dicts: ``frames``
``[B, T, C, H, W]`` in [-1, 1] and, with actions, ``actions`` ``[B, T, ...]``, ``rewards``
and ``dones`` ``[B, T]``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.clip_dataset import ClipDataset, RandomClipSampler, split_episodes
from wmkit.core.data.open_source import SourceKind, open_source
from wmkit.core.data.resumable_loader import ResumableLoader
from wmkit.core.data.source import EpisodeSource

__all__ = ["EpisodeDataModule"]


class EpisodeDataModule(L.LightningDataModule):
    """Clips from a recorded dataset, a LeRobot dataset or a folder of videos.

    Args:
        path: dataset directory.
        kind: ``auto``, ``wmkit``, ``lerobot`` or ``video_folder``.
        source_kwargs: reader options (e.g. ``{"camera_key": "observation.images.top"}``).
        clip_length: frames per clip.
        frame_skip: take every ``frame_skip``-th frame.
        batch_size: clips per batch (per device).
        num_workers: DataLoader worker processes.
        split: train/val/test fractions of the episodes.
        split_seed: seed of the episode split.
        samples_per_epoch: random training clips per epoch (all ranks together); default
            the number of non-overlapping training clips.
        resolution: resize frames to this square size.
        with_steps: include actions, rewards and dones (``False`` for frame-only stages).
        seed: seed of the random clip draws.
        final_frames: let clips end on an episode's final observation (the one after its
            last action) where the dataset stores it; its padded step is masked out by the
            batches' ``step_mask`` (``ClipDataset``).
    """

    def __init__(
        self,
        path: str,
        kind: SourceKind = "auto",
        source_kwargs: dict[str, Any] | None = None,
        clip_length: int = 16,
        frame_skip: int = 1,
        batch_size: int = 8,
        num_workers: int = 0,
        split: tuple[float, float, float] = (0.9, 0.05, 0.05),
        split_seed: int = 0,
        samples_per_epoch: int | None = None,
        resolution: int | None = None,
        with_steps: bool = True,
        seed: int = 0,
        final_frames: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._source: EpisodeSource | None = None
        self.datasets: dict[str, ClipDataset] = {}

    @property
    def source(self) -> EpisodeSource:
        if self._source is None:
            hp = self.hparams
            self._source = open_source(hp.path, hp.kind, **(hp.source_kwargs or {}))
        return self._source

    @property
    def action_spec(self) -> ActionSpec | None:
        """The dataset's action spec (read from disk; available before ``setup``)."""
        return self.source.action_spec

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        splits = split_episodes(len(self.source), hp.split, hp.split_seed)
        common = {
            "clip_length": hp.clip_length,
            "frame_skip": hp.frame_skip,
            "resolution": hp.resolution,
            "with_steps": hp.with_steps,
            "final_frames": hp.final_frames,
        }
        for name, episodes in splits.items():
            if not episodes:
                continue
            mode = "random" if name == "train" else "sequential"
            self.datasets[name] = ClipDataset(
                self.source,
                mode=mode,
                episodes=episodes,
                seed=hp.seed,
                samples_per_epoch=hp.samples_per_epoch if name == "train" else None,
                **common,
            )

    def _loader(
        self, name: str, loader: type[DataLoader] = DataLoader, **kwargs: Any
    ) -> DataLoader:
        if name not in self.datasets:
            raise ValueError(
                f"the {name} split is empty: {len(self.source)} episodes split as "
                f"{tuple(self.hparams.split)}"
            )
        workers = self.hparams.num_workers
        return loader(
            self.datasets[name],
            batch_size=self.hparams.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.trainer is not None
            and self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator",
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        data = self.datasets["train"]
        # resumable: a run killed mid-epoch goes on with the clips it would have drawn next
        sampler = RandomClipSampler(data)
        return self._loader("train", ResumableLoader, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
