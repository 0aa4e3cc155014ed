"""``wmkit convert <family> ...``: turn a published checkpoint into a wmkit
``from_pretrained`` directory (DESIGN.md §5b).

Core knows no family. The package that owns a model registers its converter in the
entry-point group ``wmkit.converters`` (name → a :class:`~wmkit.core.cli.Command` or a
callable ``run(argv) -> exit code`` whose docstring's first line is its help), so
installing the package makes ``wmkit convert <name>`` appear::

    [project.entry-points."wmkit.converters"]
    vidtok = "wmkit.tokenizers.convert_vidtok:command"
"""

from __future__ import annotations

import argparse
import pickle
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from wmkit.core.cli import Command, command_lines, dispatch
from wmkit.core.protocols import Tokenizer

__all__ = [
    "CONVERTER_GROUP",
    "RELEASED_TOKENIZER_GROUP",
    "command",
    "converter_parser",
    "discover_converters",
    "load_released_tokenizer",
    "load_tensor_checkpoint",
    "run",
]

CONVERTER_GROUP = "wmkit.converters"
#: entry-point group of released-tokenizer readers: family name → ``load(folder) -> Tokenizer``.
#: A converter in one package (e.g. ar-world's iVideoGPT world model) reads the tokenizer that
#: another package owns through it, so packages still meet only through core.
RELEASED_TOKENIZER_GROUP = "wmkit.released_tokenizers"


def load_tensor_checkpoint(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load`` a published checkpoint as tensors only (``weights_only=True``, on the
    CPU), for a converter.

    Raises ``FileNotFoundError`` naming ``what`` for a missing file, and ``ValueError`` for a
    file whose unpickling would run code or build arbitrary objects (it is refused, not run)
    or that is not a torch checkpoint.
    """
    import torch  # here: listing converters should not import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"refusing to read {path}: it is not a tensors-only checkpoint (unpickling it "
            f"would run code or build arbitrary objects; torch.load(weights_only=True) said: "
            f"{first})"
        ) from e
    except (RuntimeError, EOFError) as e:
        raise ValueError(f"cannot read {path} as a torch checkpoint: {e}") from e


def converter_parser(
    family: str, description: str, source: str, source_help: str, out_help: str
) -> argparse.ArgumentParser:
    """The ``wmkit convert <family>`` parser a converter adds its options to: the released
    file or folder (positional ``source``) and ``--out DIR`` (required)."""
    parser = argparse.ArgumentParser(prog=f"wmkit convert {family}", description=description)
    parser.add_argument(source, help=source_help)
    parser.add_argument("--out", required=True, help=out_help)
    return parser


def discover_converters() -> dict[str, EntryPoint]:
    """Installed converter families by name (loaded lazily, on use)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=CONVERTER_GROUP):
        found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def load_released_tokenizer(family: str, folder: str | Path) -> Tokenizer:
    """The released tokenizer of ``family`` in ``folder``, read by the reader that the package
    owning it registers under :data:`RELEASED_TOKENIZER_GROUP` (e.g. wmkit-tokenizers'
    ``ivideogpt``)."""
    readers = {ep.name: ep for ep in entry_points(group=RELEASED_TOKENIZER_GROUP)}
    if family not in readers:
        installed = ", ".join(sorted(readers)) or "none"
        raise ImportError(
            f"no reader for released {family!r} tokenizers is installed (installed: {installed}); "
            "install wmkit-tokenizers (or pip install wmkit)"
        )
    return readers[family].load()(Path(folder))


def _usage(families: dict[str, EntryPoint]) -> str:
    lines = [
        "usage: wmkit convert <family> SRC [options] --out DIR",
        "",
        "Convert a published checkpoint into a wmkit from_pretrained directory.",
        "",
        "families:",
    ]
    if not families:
        lines.append(
            "  (none installed: converters come with wmkit packages, e.g. wmkit-tokenizers)"
        )
    lines += command_lines(families)
    lines += ["", "Run `wmkit convert <family> --help` for a family's options."]
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    """Dispatch ``argv`` (``<family> ...``) to the family's converter; returns the exit code."""
    families = discover_converters()
    return dispatch(
        argv,
        families,
        lambda: _usage(families),
        lambda name, hint: (
            f"wmkit convert: unknown family {name!r}.{hint} Installed: "
            f"{', '.join(families) or 'none'}. See `wmkit convert --help`."
        ),
    )


command = Command(help="convert a published checkpoint (see `wmkit convert --help`)", run=run)
