"""pytest mix-ins over the conformance checks, in the manner of diffusers' ``ModelTesterMixin``.

A package's test module subclasses one per model it ships and provides the model and inputs::

    class TestMyWorldModel(WorldModelTests):
        def make_model(self):
            return MyWorldModel(action_spec=ActionSpec.discrete(5), size="tiny")

        def make_inputs(self):
            return context_frames, actions          # [B, T0, C, H, W], [B, T, ...]

Class attributes switch checks: ``causal``, ``stochastic``, ``save_load``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.core.testing.conformance import (
    check_latent_action_model,
    check_tokenizer,
    check_world_model,
)

__all__ = ["LatentActionModelTests", "TokenizerTests", "WorldModelTests"]


class _ModelTests:
    causal: bool = True
    save_load: bool = True
    seed: int = 0

    def make_model(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define make_model()")

    def _model(self) -> Any:
        torch.manual_seed(self.seed)
        model = self.make_model()
        return model.eval() if hasattr(model, "eval") else model


class WorldModelTests(_ModelTests):
    """Runs :func:`check_world_model`; ``make_inputs`` returns ``(context_frames, actions)``."""

    stochastic: bool = False

    def make_inputs(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must define make_inputs()")

    def test_world_model_conformance(self) -> None:
        context, actions = self.make_inputs()
        check_world_model(
            self._model(),
            context,
            actions,
            causal=self.causal,
            stochastic=self.stochastic,
            save_load=self.save_load,
        )


class TokenizerTests(_ModelTests):
    """Runs :func:`check_tokenizer`; ``make_inputs`` returns a video ``[B, T, C, H, W]``."""

    def make_inputs(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define make_inputs()")

    def test_tokenizer_conformance(self) -> None:
        check_tokenizer(
            self._model(), self.make_inputs(), causal=self.causal, save_load=self.save_load
        )


class LatentActionModelTests(_ModelTests):
    """Runs :func:`check_latent_action_model`; ``make_inputs`` returns frames."""

    def make_inputs(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define make_inputs()")

    def test_latent_action_model_conformance(self) -> None:
        check_latent_action_model(
            self._model(), self.make_inputs(), causal=self.causal, save_load=self.save_load
        )
