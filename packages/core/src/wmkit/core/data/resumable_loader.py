"""`ResumableLoader`: a training ``DataLoader`` whose place in the epoch travels in Lightning's
checkpoints, so a run killed mid-epoch resumes on the very batches an uninterrupted run would
have drawn next; and `ResumableShuffleSampler`, a shuffling sampler it can resume.

Lightning saves the ``state_dict`` of every training loader that has one and hands it back
through ``load_state_dict`` when a checkpoint is resumed; a loader without one restarts its
epoch from the first batch (Lightning then warns that results may be unreliable), so a resumed
run trains on some clips twice and never on others. The state is the sampler's epoch and the
number of batches trained on in it; on resume the sampler skips that many draws, so no item is
read only to be thrown away. Any sampler with an ``epoch`` (``set_epoch``) and a ``start``
(draws to skip at its next iteration, then reset) will do: :class:`RandomClipSampler` for
random clips, :class:`ResumableShuffleSampler` for a shuffled fixed dataset.

The sampler's epoch is read when the first batch is drawn, not when the iterator is made:
a resumed Lightning run makes the iterator before it sets the epoch. Lightning does not draw
ahead of a loader with a length, so the batches drawn are the batches trained on.
``tests/test_resumable_loader.py`` pins this: a run stopped mid-epoch or at an epoch's end and
resumed sees the same clips, step for step, as an uninterrupted one, and ends with the same
weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from wmkit.core.data.clip_dataset import _world

__all__ = ["ResumableLoader", "ResumableShuffleSampler"]


class ResumableShuffleSampler(DistributedSampler):
    """``DistributedSampler(shuffle=True)``: a new permutation of ``dataset`` every epoch (from
    ``seed`` and ``set_epoch``), each DDP rank taking its share, on one process or many (world
    size and rank default to the initialised process group, else 1 and 0); ``start`` skips
    that many of this rank's draws at the next iteration only."""

    def __init__(
        self,
        dataset: Dataset,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        num_replicas, rank = _world(num_replicas, rank)
        super().__init__(dataset, num_replicas, rank, shuffle=True, seed=seed, drop_last=drop_last)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return islice(super().__iter__(), start, None)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a resumable sampler (``sampler=``: one with ``epoch`` and
    ``start``, see the module docstring) with a fixed batch size, whose ``state_dict`` /
    ``load_state_dict`` record and restore its place in the epoch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        resumable = hasattr(self.sampler, "start") and hasattr(self.sampler, "epoch")
        if not resumable or self.batch_size is None:
            raise TypeError(
                "ResumableLoader needs a batch_size and a sampler with `epoch` and `start` "
                f"(RandomClipSampler, ResumableShuffleSampler); got {type(self.sampler).__name__}"
            )
        self._drawn = 0
        self._resume: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        sampler: Any = self.sampler
        skip = 0
        if self._resume is not None:
            epoch, batches = self._resume
            self._resume = None
            if epoch == sampler.epoch:
                skip = batches
        sampler.start = skip * self.batch_size
        self._drawn = skip
        for batch in super().__iter__():
            self._drawn += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``epoch`` and the ``batches`` drawn (and trained on) in it."""
        return {"epoch": int(self.sampler.epoch), "batches": self._drawn}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip ``state["batches"]`` batches at the next iteration if it is still epoch
        ``state["epoch"]``."""
        self._resume = (int(state["epoch"]), int(state["batches"]))
