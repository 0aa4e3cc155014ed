"""``wmkit.core.testing``'s training helpers: ``check_loss_decreases`` passes a model that
learns and fails one that does not; ``cpu_trainer`` is quiet and takes overrides."""

import pytest
import torch
from torch import nn

from wmkit.core.testing import check_loss_decreases, cpu_trainer


def _regression():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64)
    model = nn.Linear(4, 1)
    return model, lambda: (model(x).squeeze(-1) - y).pow(2).mean()


def test_a_model_that_learns_passes_and_reports_both_losses():
    model, loss = _regression()
    before, after = check_loss_decreases(model, loss, steps=30, lr=0.05, factor=0.5)
    assert after < 0.5 * before


def test_a_model_that_does_not_learn_fails_with_the_numbers():
    model, loss = _regression()
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(AssertionError, match="expected it below 0.8 x"):
        check_loss_decreases(model, loss, steps=3, optimizer=frozen)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        check_loss_decreases(model, loss, steps=0)


def test_seeds_fix_the_draws_of_a_noisy_loss():
    """With ``eval_seed`` the two measurements see the same noise; with ``train_seed`` every
    step does: a noisy objective made fixed."""
    model, loss = _regression()
    draws = []

    def noisy():
        noise = torch.randn(())
        draws.append(float(noise))
        return loss() + 0.01 * noise

    check_loss_decreases(model, noisy, steps=3, lr=0.2, factor=0.95, eval_seed=7, train_seed=11)
    assert draws[0] == draws[-1] and draws[1] == draws[2] == draws[3] != draws[0]


def test_cpu_trainer_is_quiet_and_takes_overrides(tmp_path):
    trainer = cpu_trainer(max_steps=3, default_root_dir=tmp_path)
    assert trainer.logger is None and not trainer.checkpoint_callbacks
    assert trainer.max_steps == 3 and trainer.accelerator.__class__.__name__ == "CPUAccelerator"
    assert cpu_trainer(enable_checkpointing=True, default_root_dir=tmp_path).checkpoint_callbacks
