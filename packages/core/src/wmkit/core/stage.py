"""Turn a package's LightningModule and LightningDataModule into a ``wmkit <stage>`` command.

Every training stage is LightningCLI (DESIGN.md §5), so every trainer option works::

    wmkit tokenizer fit -c configs/vidtok_tiny.yaml --trainer.devices 8
    wmkit tokenizer fit -c configs/vidtok_tiny.yaml --trainer.precision bf16-mixed
    wmkit tokenizer fit -c configs/vidtok_tiny.yaml --ckpt_path last     # resume
    wmkit tokenizer test -c configs/vidtok_tiny.yaml --ckpt_path path/to.ckpt
    wmkit tokenizer fit --print_config
    wmkit tokenizer export -c configs/vidtok_tiny.yaml --ckpt_path path/to.ckpt --out DIR

Models and data are in subclass mode, so YAML picks the classes by path
(``model: {class_path: ..., init_args: ...}``) and nested networks are injected the same way.

The CLI is :class:`~wmkit.core.stage_cli.StageCLI`: checkpoints are read as weights only, and
a datamodule whose action spec differs from the model's stops the run before it starts.
Checkpoints carry the random generators
(:class:`~wmkit.core.random_state.RandomStateCheckpoint`), so a resumed run trains on the
noise an uninterrupted one would. ``fit`` ends by writing the trained network as a
``from_pretrained`` directory (one callback for every stage,
:class:`~wmkit.core.export.ExportPretrained`): to ``--export_dir`` when given, else to the
module's own ``export_dir``, else ``<log dir>/pretrained``. ``export`` does the same for any
checkpoint, read as tensors only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from wmkit.core.cli import Command

__all__ = ["export_stage", "make_stage", "run_stage"]


def run_stage(
    model_class: type | None,
    datamodule_class: type | None,
    argv: list[str],
    **cli_kwargs: Any,
) -> Any:
    """Run the stage CLI on ``argv`` (``fit|validate|test|predict ...``); returns the CLI object.

    ``model_class``/``datamodule_class`` are base classes (``None`` accepts any
    ``LightningModule``/``LightningDataModule``); YAML may name any subclass.
    """
    from wmkit.core.stage_cli import StageCLI

    kwargs: dict[str, Any] = {
        "subclass_mode_model": True,
        "subclass_mode_data": True,
        "save_config_kwargs": {"overwrite": True},
        "args": argv,
    }
    kwargs.update(cli_kwargs)
    return StageCLI(model_class, datamodule_class, **kwargs)


def export_stage(
    model_class: type | None, datamodule_class: type | None, argv: list[str], prog: str
) -> int:
    """``wmkit <stage> export -c CONFIG --ckpt_path CKPT --out DIR [overrides]``: build the
    configured module, load the checkpoint's weights (tensors only) and write the network as
    a ``from_pretrained`` directory."""
    from wmkit.core.export import export_checkpoint

    parser = argparse.ArgumentParser(
        prog=f"{prog} export",
        description="Write a trained checkpoint as a from_pretrained directory.",
    )
    parser.add_argument("-c", "--config", action="append", required=True,
                        help="the stage's YAML config, as trained")  # fmt: skip
    parser.add_argument("--ckpt_path", required=True, help="Lightning checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="directory to write")
    args, overrides = parser.parse_known_args(argv)
    cli_args = [x for c in args.config for x in ("-c", c)] + overrides
    cli = run_stage(model_class, datamodule_class, cli_args, run=False)
    out = export_checkpoint(cli.model, args.ckpt_path, args.out)
    print(f"wrote {out} (load_pretrained)")
    return 0


def make_stage(
    help: str,
    model_class: type | Callable[[], type] | None = None,
    datamodule_class: type | Callable[[], type] | None = None,
    **cli_kwargs: Any,
) -> Command:
    """Build the :class:`~wmkit.core.cli.Command` for a training stage.

    ``model_class``/``datamodule_class`` may be zero-argument callables returning the class,
    so that the entry-point module stays cheap to import (``wmkit --help`` loads it).
    """

    def resolve(obj: Any) -> type | None:
        if obj is None or isinstance(obj, type):
            return obj
        return obj()

    def run(argv: list[str]) -> int:
        if argv and argv[0] == "export":
            return export_stage(
                resolve(model_class), resolve(datamodule_class), argv[1:], "wmkit <stage>"
            )
        run_stage(resolve(model_class), resolve(datamodule_class), list(argv), **cli_kwargs)
        return 0

    return Command(help=help, run=run)
