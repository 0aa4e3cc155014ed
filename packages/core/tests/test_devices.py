"""follow_device: a frozen component outside a model's submodules follows its inputs."""

import torch
from torch import nn

from wmkit.core import follow_device


def test_follow_device_moves_a_module_that_lives_elsewhere_and_ignores_the_rest():
    meta = torch.device("meta")  # the only second device a CPU-only machine has
    net = nn.Linear(2, 2)
    follow_device(net, meta)
    assert net.weight.device == meta
    buffers_only = nn.Module()
    buffers_only.register_buffer("table", torch.zeros(3))
    follow_device(buffers_only, meta)
    assert buffers_only.table.device == meta
    follow_device(nn.Identity(), meta)  # no tensors: nothing to move
    follow_device(object(), meta)  # not a module: left alone
