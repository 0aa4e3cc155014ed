"""A world model that holds a frozen tokenizer outside its own parameters: the tokenizer moves
with the model (``.to``, ``.half``) and stays in eval mode whatever ``train(mode)`` says."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["FrozenTokenizerMixin"]


class FrozenTokenizerMixin:
    """Mix into an ``nn.Module`` (before it in the bases) with a ``tokenizer`` attribute that is
    not a registered submodule, so its weights stay out of the model's ``state_dict`` and
    optimiser, yet follow the model's device and dtype."""

    tokenizer: Any

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        super()._apply(fn, recurse)  # type: ignore[misc]
        if isinstance(self.tokenizer, nn.Module):
            self.tokenizer._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> Any:
        super().train(mode)  # type: ignore[misc]
        if isinstance(self.tokenizer, nn.Module):
            self.tokenizer.eval()
        return self
