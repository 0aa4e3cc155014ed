"""Workspace-wide test settings.

Every package's tests run on one torch thread (this fixture, not a copy per package): the
models are tiny, and on a few cores shared with other test processes (DDP tests,
subprocesses) intra-op threads spend more time synchronising than computing.
"""

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """One thread from the start, so that module- and session-scoped fixtures (set up before
    any function-scoped fixture) train on one thread too."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread for every test, restored after it (a test that sets its own, as the
    quickstart's does, leaves the next one unaffected)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
