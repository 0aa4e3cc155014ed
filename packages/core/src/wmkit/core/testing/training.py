"""Training in tests: ``check_loss_decreases`` (a model learns a fixed batch, the conventions'
"loss decreasing over a few dozen steps on a fixed batch", checked the same way in every
package) and ``cpu_trainer`` (a quiet Lightning trainer on the CPU)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

__all__ = ["check_loss_decreases", "cpu_trainer"]


def _measure(loss_fn: Callable[[], Tensor], seed: int | None) -> float:
    if seed is not None:
        torch.manual_seed(seed)  # the same noise and levels before and after training
    with torch.no_grad():
        return float(loss_fn())


def check_loss_decreases(
    model: nn.Module | Iterable[Tensor],
    loss_fn: Callable[[], Tensor],
    steps: int,
    *,
    factor: float = 0.8,
    lr: float = 3e-3,
    optimizer: torch.optim.Optimizer | None = None,
    eval_seed: int | None = 123,
    train_seed: int | None = None,
) -> tuple[float, float]:
    """Train on ``loss_fn()`` for ``steps`` steps and assert that the loss, measured without
    gradients under ``eval_seed`` before and after, fell below ``factor`` times its start.

    Args:
        model: the module (or the tensors) to train.
        loss_fn: the scalar loss on the fixed batch; random draws inside it (noise levels,
            dropout) come from torch's global generator.
        steps: optimizer steps.
        factor: the loss after must be below ``factor ×`` the loss before.
        lr: AdamW's learning rate (when no ``optimizer`` is given).
        optimizer: the optimizer to step instead of AdamW over ``model``'s parameters.
        eval_seed: seed of the two measurements (``None``: the stream as it stands).
        train_seed: seed set before every training step (``None``: the stream runs on), so
            that each step sees the same draws: a fixed objective.

    Returns:
        ``(before, after)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    params = model.parameters() if isinstance(model, nn.Module) else model
    opt = optimizer if optimizer is not None else torch.optim.AdamW(params, lr=lr)
    before = _measure(loss_fn, eval_seed)
    for _ in range(steps):
        if train_seed is not None:
            torch.manual_seed(train_seed)
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _measure(loss_fn, eval_seed)
    if not after < factor * before:
        raise AssertionError(
            f"the loss went from {before:.4g} to {after:.4g} in {steps} steps; expected it "
            f"below {factor} x {before:.4g} = {factor * before:.4g}"
        )
    return before, after


def cpu_trainer(**overrides: Any) -> L.Trainer:
    """A quiet Lightning ``Trainer`` on the CPU: no logger, progress bar, checkpoints or model
    summary; ``overrides`` are more (or other) ``Trainer`` arguments."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**options, **overrides})
