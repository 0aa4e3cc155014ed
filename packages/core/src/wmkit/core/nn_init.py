"""Parameter initialisations shared by networks of several packages.

``init_lstm`` is DIAMOND's LSTM initialisation (Alonso et al., 2024, ``eloialonso/diamond``:
the reward/termination model and the actor-critic both call it), kept here so that
wmkit-diffusion-world and wmkit-agents, which must not import each other, use one copy.
"""

from __future__ import annotations

from torch import nn

__all__ = ["init_lstm"]


def init_lstm(lstm: nn.Module) -> None:
    """DIAMOND's LSTM init, in place, for an ``nn.LSTM`` or ``nn.LSTMCell``: Xavier-uniform
    input weights, orthogonal recurrent weights, zero biases except the forget gate's input
    bias at 1 (PyTorch's gate order i, f, g, o)."""
    for name, p in lstm.named_parameters():
        if "weight_ih" in name:
            nn.init.xavier_uniform_(p)
        elif "weight_hh" in name:
            nn.init.orthogonal_(p)
        elif "bias" in name:
            nn.init.zeros_(p)
            if "bias_ih" in name:
                n = p.shape[0]
                nn.init.ones_(p[n // 4 : n // 2])
