"""Run a README's Python examples as a test, so documentation cannot rot.

Every fenced ```` ```python ```` block runs in order, in one namespace (later blocks may use
earlier names), unless an HTML comment ``<!-- no-test: reason -->`` stands right before it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["readme_examples", "run_readme_examples"]

_BLOCK = re.compile(r"(<!-- no-test[^>]*-->\s*)?```python\n(.*?)```", re.S)


def readme_examples(readme: str | os.PathLike) -> list[str]:
    """The runnable Python blocks of ``readme`` (those not marked ``no-test``)."""
    text = Path(readme).read_text(encoding="utf-8")
    return [m.group(2) for m in _BLOCK.finditer(text) if not m.group(1)]


def run_readme_examples(readme: str | os.PathLike, min_blocks: int = 1) -> dict[str, Any]:
    """Execute the examples (in the current directory; chdir to a temporary one first).

    Raises ``AssertionError`` naming the failing block, or when fewer than ``min_blocks``
    runnable blocks exist. Returns the namespace, for checks on what the examples made.
    """
    blocks = readme_examples(readme)
    if len(blocks) < min_blocks:
        raise AssertionError(
            f"{readme} has {len(blocks)} runnable examples; expected >= {min_blocks}"
        )
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{Path(readme).name} block {i}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(
                f"{readme} block {i} failed: {type(e).__name__}: {e}\n{code}"
            ) from e
    return namespace
