import torch
from torch import nn

from wmkit.ar_world.frozen_tokenizer import FrozenTokenizerMixin


class Holder(FrozenTokenizerMixin, nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)
        object.__setattr__(self, "tokenizer", nn.Linear(2, 2))  # not a submodule


def test_the_tokenizer_follows_dtype_but_stays_out_of_the_state_and_frozen():
    model = Holder().double().train()
    assert model.tokenizer.weight.dtype == torch.float64
    assert model.head.weight.dtype == torch.float64
    assert model.training and not model.tokenizer.training
    assert not any(k.startswith("tokenizer") for k in model.state_dict())
