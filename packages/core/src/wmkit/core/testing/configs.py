"""Check that a shipped LightningCLI config runs: ``fit`` then ``test`` with ``fast_dev_run``.

CONVENTIONS.md asks every package to run each shipped YAML config this way in a test (as
torchgeo and litgpt do); this is the one implementation they call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_config_runs"]

QUIET = ("--trainer.enable_progress_bar=false", "--trainer.logger=false")


def check_config_runs(
    config: str | os.PathLike,
    workdir: str | os.PathLike,
    *overrides: str,
    subcommands: Sequence[str] = ("fit", "test"),
    fast_dev_run: int = 1,
) -> list[Any]:
    """Run ``config`` through ``wmkit.core.run_stage`` for each sub-command with
    ``--trainer.fast_dev_run`` (quiet, writing under ``workdir``); ``overrides`` are more
    command-line arguments. Raises ``AssertionError`` naming the config and sub-command that
    did not finish; returns the LightningCLI objects."""
    from wmkit.core.stage import run_stage

    clis = []
    for sub in subcommands:
        argv = [
            sub, "-c", str(config), f"--trainer.fast_dev_run={fast_dev_run}",
            f"--trainer.default_root_dir={workdir}", *QUIET, *overrides,
        ]  # fmt: skip
        cli = run_stage(None, None, argv)
        if not cli.trainer.state.finished:
            raise AssertionError(f"{Path(config).name}: `{sub}` did not finish")
        clis.append(cli)
    return clis
