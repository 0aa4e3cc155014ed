"""Workspace-wide test settings.

Tests use one torch thread: the models are tiny, and on 2 cores shared with other test
processes (DDP tests, subprocesses) intra-op threads spend more time synchronising than
computing (measured 20-50x slower with 2 threads under load).
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
