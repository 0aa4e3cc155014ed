"""`StageCLI`: the LightningCLI every ``wmkit <stage>`` command runs.

It differs from ``LightningCLI`` in two ways, both about trusting what is on disk.

Every checkpoint it reads (``--ckpt_path``, resuming or testing) is read with
``torch.load(weights_only=True)``, passed explicitly, so the
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` variable cannot make it unpickle arbitrary objects (and
``--weights_only`` is not an option). wmkit's own checkpoints hold tensors, numbers, strings
and containers only (hyperparameters are the parsed config), which the weights-only reader
accepts.

The trainer gets :class:`~wmkit.core.action_spec_check.ActionSpecCheck`, so a datamodule
whose actions differ from the model's stops the run before its first step.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from wmkit.core.action_spec_check import ActionSpecCheck

__all__ = ["StageCLI"]


class StageCLI(LightningCLI):
    """``LightningCLI`` that reads checkpoints as weights only and checks action specs.

    Takes LightningCLI's arguments; ``trainer_defaults["callbacks"]`` are kept and the
    action-spec check is added to them.
    """

    def __init__(
        self, *args: Any, trainer_defaults: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        defaults = dict(trainer_defaults or {})
        callbacks = defaults.get("callbacks") or []
        if not isinstance(callbacks, list):
            callbacks = [callbacks]
        defaults["callbacks"] = [*callbacks, ActionSpecCheck()]
        super().__init__(*args, trainer_defaults=defaults, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """LightningCLI's subcommands, without a ``--weights_only`` option (always ``True``)."""
        return {name: {*skip, "weights_only"} for name, skip in LightningCLI.subcommands().items()}

    def fit(self, **kwargs: Any) -> None:
        """``Trainer.fit`` reading ``--ckpt_path`` as weights only."""
        self.trainer.fit(**kwargs, weights_only=True)

    def validate(self, **kwargs: Any) -> None:
        """``Trainer.validate`` reading ``--ckpt_path`` as weights only."""
        self.trainer.validate(**kwargs, weights_only=True)

    def test(self, **kwargs: Any) -> None:
        """``Trainer.test`` reading ``--ckpt_path`` as weights only."""
        self.trainer.test(**kwargs, weights_only=True)

    def predict(self, **kwargs: Any) -> None:
        """``Trainer.predict`` reading ``--ckpt_path`` as weights only."""
        self.trainer.predict(**kwargs, weights_only=True)
