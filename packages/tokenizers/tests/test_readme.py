"""Every Python example in the README runs as written (unless marked `no-test`)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- no-test[^>]*-->\s*)?```python\n(.*?)```", re.S)


def _blocks():
    return [m.group(2) for m in BLOCK.finditer(README.read_text()) if not m.group(1)]


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = _blocks()
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"README.md block {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - reported with the block
            pytest.fail(f"README block {i} failed: {type(e).__name__}: {e}\n{code}")
