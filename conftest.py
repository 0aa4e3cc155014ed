"""Workspace-wide test settings.

Every package's tests run on one torch thread (this fixture, not a copy per package): the
models are tiny, and on a few cores shared with other test processes (DDP tests,
subprocesses) intra-op threads spend more time synchronising than computing. The Python
processes the tests start read the bytecode this one compiles (``_share_compiled_bytecode``).
"""

import atexit
import os
import shutil
import sys
import tempfile


def _share_compiled_bytecode() -> None:
    """Under ``PYTHONDONTWRITEBYTECODE`` with no bytecode installed (``uv sync`` compiles none
    by default), every Python process the tests start (the CLI, DDP ranks, a run killed and
    resumed, mkdocs) compiles torch, Lightning and the rest from source again, several seconds
    each. This process compiles them anyway: keep its bytecode in a temporary cache for the
    session (``sys.pycache_prefix``, so nothing is written beside the sources, and removed at
    exit) and let those processes read it. A no-op where bytecode is written as usual."""
    if not sys.dont_write_bytecode or sys.pycache_prefix is not None:
        return
    prefix = tempfile.mkdtemp(prefix="wmkit-pytest-bytecode-")
    atexit.register(shutil.rmtree, prefix, ignore_errors=True)
    sys.pycache_prefix, sys.dont_write_bytecode = prefix, False
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_share_compiled_bytecode()  # before torch is imported

import pytest  # noqa: E402
import torch  # noqa: E402


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
