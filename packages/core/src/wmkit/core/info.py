"""``wmkit info``: versions of the installed wmkit packages and of the stack under them."""

from __future__ import annotations

import argparse
import platform
from importlib.metadata import PackageNotFoundError, distributions, version

from wmkit.core.cli import Command, discover_commands

__all__ = ["command"]

_STACK = ("torch", "lightning", "av", "safetensors", "huggingface-hub", "numpy")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wmkit info", description=command.help)
    parser.parse_args(argv)
    import torch

    wmkit_dists = sorted(
        {
            d.metadata["Name"]: d.version
            for d in distributions()
            if (d.metadata["Name"] or "").lower().startswith("wmkit")
        }.items()
    )
    print(f"python           {platform.python_version()} ({platform.platform()})")
    for name, ver in wmkit_dists:
        print(f"{name:<17}{ver}")
    for name in _STACK:
        try:
            print(f"{name:<17}{version(name)}")
        except PackageNotFoundError:
            print(f"{name:<17}not installed")
    cuda = torch.cuda.is_available()
    devices = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    )
    print(f"cuda             {'yes: ' + ', '.join(devices) if cuda else 'no'}")
    print(f"commands         {', '.join(discover_commands()) or 'none'}")
    return 0


command = Command(help="show installed wmkit packages, library versions and devices", run=_run)
