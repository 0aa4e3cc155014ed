"""Shared fixtures: one short training reused by several tests (one thread per test comes from
the workspace's ``conftest.py``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wmkit.core import to_float_video
from wmkit.core.testing import moving_squares
from wmkit.latent_action import ArrayEpisodes, LatentActionAutoencoder


def train_pairs(
    model: LatentActionAutoencoder,
    frames: torch.Tensor,
    steps: int,
    lr: float = 3e-3,
    batch: int = 64,
    seed: int = 0,
) -> list[float]:
    """Train on random (t, t + 1) pairs of ``frames`` ``[N, T, C, H, W]``; returns losses."""
    gen = torch.Generator().manual_seed(seed)
    pairs = torch.stack([frames[:, :-1], frames[:, 1:]], 2).flatten(0, 1)  # [N (T-1), 2, ...]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        b = pairs[torch.randint(0, len(pairs), (batch,), generator=gen)]
        out = model(b)
        loss = F.mse_loss(out.predicted, b[:, 1:]) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="session")
def squares():
    """40 train + 16 test moving-squares episodes of 9 frames, 16x16."""
    return moving_squares(56, 9, 16, seed=0)


@pytest.fixture(scope="session")
def squares_source(squares) -> ArrayEpisodes:
    return ArrayEpisodes(
        squares.frames, squares.actions, squares.action_spec, squares.rewards, squares.dones
    )


@pytest.fixture(scope="session")
def trained(squares) -> LatentActionAutoencoder:
    """The tiny FSQ model after a short training on the 40 training episodes."""
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = LatentActionAutoencoder.from_size("tiny")
    train_pairs(model, to_float_video(squares.frames[:40]), steps=200)
    torch.set_num_threads(before)
    return model.eval()


@pytest.fixture(scope="session")
def train_fn():
    """``train_pairs`` (test modules cannot import conftest under ``--import-mode=importlib``)."""
    return train_pairs


@pytest.fixture(scope="session")
def splits() -> tuple[list[int], list[int]]:
    """Train and test episodes of ``squares``."""
    return list(range(40)), list(range(40, 56))
