"""Keep a frozen component (held outside a model's submodules, such as a world model's
tokenizer) on the device of the tensors it is given."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["follow_device"]


def follow_device(component: Any, device: torch.device) -> None:
    """Move ``component`` to ``device`` if it is an ``nn.Module`` whose first parameter (or
    buffer) lives elsewhere.

    A model's ``_apply`` can move such a component with it, but strategies that place
    parameters themselves (FSDP) bypass ``_apply`` and leave it behind; calling this where the
    component is used keeps it with its inputs. Components without tensors are left alone."""
    if not isinstance(component, nn.Module):
        return
    first = next(iter(component.parameters()), None)
    if first is None:
        first = next(iter(component.buffers()), None)
    if first is not None and first.device != device:
        component.to(device)
