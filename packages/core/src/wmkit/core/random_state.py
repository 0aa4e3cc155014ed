"""`RandomStateCheckpoint`: Lightning checkpoints that carry the global random generators, so a
resumed run draws the same noise, step for step, as an uninterrupted one.

Lightning's checkpoints restore weights, optimiser, schedulers, loop counters and (through
``ResumableLoader``) the place in the data; they do not restore the random generators. A
resumed run is seeded again by ``seed_everything`` and then draws its diffusion noise, noise
levels and dropout masks from the seed's start instead of from where the killed run stood, so
it trains on other noise and ends with other weights.

This callback saves the torch (CPU and, where initialised, CUDA), NumPy and Python generator
states with every checkpoint, as they are when it is written, and sets them back in the resumed
run at the point that matches (:class:`RandomStateCheckpoint`). The states are stored as
tensors and plain numbers, so the checkpoint still loads with ``torch.load(weights_only=True)``.

One case stays inexact: a checkpoint taken after the last batch of an epoch that a validation
loop follows. The uninterrupted run validates, and validation draws from the generators where
it samples (a world model's rollouts do); Lightning does not rerun that validation on resume,
so the resumed run trains on from the generators as they were before it. Checkpoints meant for
exact resumes fall mid-epoch (the quickstart's do); ``tests/test_random_state.py`` pins the
exact ones.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

__all__ = ["RandomStateCheckpoint", "get_random_state", "set_random_state"]


def get_random_state() -> dict[str, Any]:
    """The torch (CPU, and CUDA where initialised), NumPy and Python generator states, as
    tensors and integers (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Set the generators to ``state`` (from :func:`get_random_state`)."""
    missing = {"torch", "numpy", "python"} - set(state)
    if missing:
        raise ValueError(
            f"random state must have 'torch', 'numpy' and 'python'; missing {sorted(missing)}"
        )
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((
        np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
        np_state["has_gauss"], np_state["gauss"],
    ))  # fmt: skip
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["internal"]), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) != torch.cuda.device_count():
            raise ValueError(
                f"the checkpoint holds {len(cuda)} CUDA generator states; this machine has "
                f"{torch.cuda.device_count()} devices"
            )
        torch.cuda.set_rng_state_all(cuda)


class RandomStateCheckpoint(L.Callback):
    """Save the global random generators with every checkpoint and restore them in a resumed
    run where the uninterrupted run stood (see the module docstring for when that is exact).

    A checkpoint taken mid-epoch is restored before the resumed run's first training batch
    (after its new ``DataLoader`` iterator drew a seed the uninterrupted run did not draw);
    one taken after an epoch's last batch is restored when training starts, before the next
    epoch's iterator draws its seed, as it does in the uninterrupted run.

    Under DDP Lightning keeps one copy of a callback's state (rank 0's), so every rank restores
    the same generators; give ranks their own streams in the module
    (``torch.initial_seed() + rank``) where they must differ.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch_end = False
        self._pending: dict[str, Any] | None = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Lightning runs checkpoint callbacks after the others: this is known when they save
        self._epoch_end = batch_idx + 1 >= trainer.num_training_batches

    def state_dict(self) -> dict[str, Any]:
        return {**get_random_state(), "epoch_end": self._epoch_end}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def _restore(self, at_epoch_end: bool) -> None:
        if self._pending is not None and bool(self._pending.get("epoch_end")) == at_epoch_end:
            state, self._pending = self._pending, None
            set_random_state(state)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(at_epoch_end=True)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._restore(at_epoch_end=False)
