"""``init_lstm``: DIAMOND's LSTM initialisation on ``nn.LSTM`` and ``nn.LSTMCell``: orthogonal
recurrent weights, zero biases but the forget gate's input bias at 1, and the draws of a
seed reproduced exactly."""

import pytest
import torch
from torch import nn

from wmkit.core.nn_init import init_lstm


@pytest.mark.parametrize(
    "make", [lambda: nn.LSTM(6, 4, batch_first=True), lambda: nn.LSTMCell(6, 4)]
)
def test_init_lstm(make):
    torch.manual_seed(0)
    lstm = make()
    init_lstm(lstm)
    params = dict(lstm.named_parameters())
    hh = next(p for n, p in params.items() if "weight_hh" in n)  # [4 * 4, 4]
    assert torch.allclose(hh.T @ hh, torch.eye(4), atol=1e-5)
    bias_ih = next(p for n, p in params.items() if "bias_ih" in n)
    bias_hh = next(p for n, p in params.items() if "bias_hh" in n)
    expected = torch.zeros(16)
    expected[4:8] = 1  # gate order i, f, g, o: the forget gate's slice
    assert torch.equal(bias_ih.detach(), expected) and not bias_hh.any()
    torch.manual_seed(0)
    again = make()
    init_lstm(again)
    assert all(torch.equal(a, b) for a, b in zip(lstm.parameters(), again.parameters()))
