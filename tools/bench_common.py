"""Helpers the benchmark scripts share: waiting for the device, and the line naming the
hardware a figure was measured on."""

from __future__ import annotations

import os
import platform

import torch


def sync(device: str) -> None:
    """Wait for queued CUDA work (timings); a no-op on CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hardware_line(device: str) -> str:
    """The GPU's name, or the CPU's cores, architecture and torch threads."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU: {os.cpu_count()} cores ({platform.machine()}), torch threads {threads}"
