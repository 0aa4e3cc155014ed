"""The ``wmkit`` command.

``wmkit`` owns no stage itself: every installed wmkit package adds its commands through
the entry-point group ``wmkit.commands`` (name → a :class:`Command`), so ``pip install
wmkit-tokenizers`` makes ``wmkit tokenizer fit -c cfg.yaml`` appear without core knowing
it. In a package's ``pyproject.toml``::

    [project.entry-points."wmkit.commands"]
    tokenizer = "wmkit.tokenizers.cli:command"
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

__all__ = [
    "ENTRY_POINT_GROUP",
    "Command",
    "command_lines",
    "discover_commands",
    "dispatch",
    "load_command",
    "main",
]

ENTRY_POINT_GROUP = "wmkit.commands"


@dataclass(frozen=True)
class Command:
    """A ``wmkit`` sub-command: a one-line ``help`` and ``run(argv) -> exit code``.

    ``run`` should import heavy modules inside itself, so ``wmkit --help`` stays fast.
    """

    help: str
    run: Callable[[list[str]], int | None]


def discover_commands() -> dict[str, EntryPoint]:
    """Installed commands by name (entry points are loaded lazily, on use)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def load_command(ep: EntryPoint) -> Command:
    """Load an entry point as a :class:`Command` (a callable becomes one, its docstring's
    first line the help); raises ``TypeError`` for anything else."""
    obj = ep.load()
    if isinstance(obj, Command):
        return obj
    if callable(obj):
        doc = (obj.__doc__ or "").strip().splitlines()
        return Command(help=doc[0] if doc else "", run=obj)
    raise TypeError(
        f"entry point {ep.name} = {ep.value} in group {ENTRY_POINT_GROUP} must be a "
        f"wmkit.core.cli.Command or a callable; got {type(obj).__name__}"
    )


def command_lines(commands: dict[str, EntryPoint]) -> list[str]:
    """One ``  name  help`` line per command of a listing (``wmkit --help``, ``wmkit convert
    --help``); a plug-in that fails to load shows why instead of breaking the listing."""
    lines = []
    for name, ep in commands.items():
        try:
            summary = load_command(ep).help
        except Exception as e:  # a broken plug-in must not break the listing
            summary = f"[failed to load {ep.value}: {type(e).__name__}: {e}]"
        lines.append(f"  {name:<16}{summary}")
    return lines


def dispatch(
    args: list[str],
    commands: dict[str, EntryPoint],
    usage: Callable[[], str],
    unknown: Callable[[str, str], str],
) -> int:
    """Run the command ``args[0]`` names on ``args[1:]`` and return its exit code. No
    arguments or ``-h``/``--help``/``help``: print ``usage()`` (exit 2 / 0). A name not in
    ``commands``: print ``unknown(name, hint)`` to stderr, ``hint`` being `` Did you mean:
    ...?`` with up to three close names or ``""`` (exit 2)."""
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in commands:
        close = difflib.get_close_matches(name, list(commands), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        print(unknown(name, hint), file=sys.stderr)
        return 2
    code = load_command(commands[name]).run(rest)
    return int(code or 0)


def _usage(commands: dict[str, EntryPoint]) -> str:
    lines = [
        "usage: wmkit <command> [args...]",
        "",
        "wmkit: composable components for interactive world models.",
        "",
        "commands:",
    ]
    if not commands:
        lines.append("  (none installed: install a wmkit package, e.g. pip install wmkit)")
    lines += command_lines(commands)
    lines += ["", "Run `wmkit <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wmkit`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = discover_commands()
    known = ", ".join(commands) or "none"
    return dispatch(
        args,
        commands,
        lambda: _usage(commands),
        lambda name, hint: (
            f"wmkit: unknown command {name!r}.{hint} Installed commands: "
            f"{known}. See `wmkit --help`."
        ),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
