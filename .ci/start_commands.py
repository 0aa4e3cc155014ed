"""Print the README's Start commands, one per line, as CI runs them.

CI must start the way a newcomer does: the commands of the README's ``## Start`` block, as
written, on a clone with no environment. Reading them from the README (instead of repeating
them here) means the two cannot drift apart. The one change CI makes is the quickstart's
budget: ``--tiny`` (the README's one-minute check) is appended to ``wmkit quickstart``.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path


def start_commands(readme: str) -> list[str]:
    section = re.search(r"^## Start\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if section is None:
        raise SystemExit("README.md has no '## Start' section")
    block = re.search(r"^```(?:bash|sh|console)?\s*$(.*?)^```\s*$", section.group(1), re.M | re.S)
    if block is None:
        raise SystemExit("README.md's Start section has no fenced command block")
    commands = []
    for line in block.group(1).splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        words = shlex.split(command)
        if words[:3] == ["uv", "run", "wmkit"] and words[3:4] == ["quickstart"]:
            command += " --tiny"
        commands.append(command)
    if not commands:
        raise SystemExit("README.md's Start block holds no command")
    return commands


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("\n".join(start_commands(path.read_text(encoding="utf-8"))))
