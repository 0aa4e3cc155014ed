"""`StageCLI`: the LightningCLI every ``wmkit <stage>`` command runs.

It differs from ``LightningCLI`` in these ways.

- Every checkpoint it reads (``--ckpt_path``, resuming or testing) is read with
  ``torch.load(weights_only=True)``, passed explicitly, so the
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` variable cannot make it unpickle arbitrary objects
  (and ``--weights_only`` is not an option). wmkit's own checkpoints hold tensors, numbers,
  strings and containers only (hyperparameters are the parsed config), which the
  weights-only reader accepts.
- LightningCLI rebuilds the model from a checkpoint's ``hyper_parameters``, importing the
  class paths they name. A checkpoint is data, so each of those class paths must lie under
  ``wmkit.`` or be one the command's own config names; any other is refused before it is
  imported.
- The trainer gets :class:`~wmkit.core.action_spec_check.ActionSpecCheck`, so a datamodule
  whose actions differ from the model's stops the run before its first step.
- The trainer gets :class:`~wmkit.core.export.ExportPretrained`: ``fit`` ends by writing the
  trained network as a ``from_pretrained`` directory (``--export_dir``, else the module's
  ``export_dir``, else ``<log dir>/pretrained``).
- Unless the config names one, the trainer gets
  :class:`~wmkit.core.random_state.RandomStateCheckpoint`: checkpoints carry the random
  generators, so a run resumed with ``--ckpt_path`` draws the noise an uninterrupted one draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from wmkit.core.action_spec_check import ActionSpecCheck
from wmkit.core.export import ExportPretrained
from wmkit.core.random_state import RandomStateCheckpoint

__all__ = ["StageCLI"]


class StageCLI(LightningCLI):
    """``LightningCLI`` that reads checkpoints as weights only, checks action specs, exports
    the trained network and checkpoints the random generators.

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

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--export_dir",
            type=str | None,
            default=None,
            help="where fit writes the trained network as a from_pretrained directory "
            "(default: the module's export_dir, else <log dir>/pretrained)",
        )

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(ExportPretrained(self._get(self.config, "export_dir")))
        if not any(isinstance(c, RandomStateCheckpoint) for c in trainer.callbacks):
            trainer.callbacks.append(RandomStateCheckpoint())
        return trainer

    def _parse_ckpt_path(self) -> None:
        # LightningCLI's hook that merges the checkpoint's hyperparameters into the config
        self._check_checkpoint_class_paths()
        super()._parse_ckpt_path()

    def _check_checkpoint_class_paths(self) -> None:
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not (ckpt_path and Path(ckpt_path).is_file()):
            return
        try:  # memory-mapped: only the hyperparameters are read from a large file
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a checkpoint in torch's legacy (non-zip) format
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
        allowed = set(_class_paths(self.config[subcommand].as_dict()))
        for class_path in _class_paths(hparams):
            if not (class_path.startswith("wmkit.") or class_path in allowed):
                raise ValueError(
                    f"{ckpt_path} names class {class_path} in its hyper_parameters, which is "
                    "neither under 'wmkit.' nor named by this command's config; refusing to "
                    "import it (pass the config that trained the checkpoint with -c)"
                )

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


def _class_paths(tree: Any) -> Iterator[str]:
    """Every ``class_path`` / ``_class_path`` string in a nested config."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("class_path", "_class_path") and isinstance(value, str):
                yield value
            else:
                yield from _class_paths(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _class_paths(value)
