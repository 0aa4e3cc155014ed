"""The README's Python examples run as written (blocks marked no-test are skipped)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = [
        m.group(2)
        for m in re.finditer(r"(<!-- no-test[^>]*-->\s*)?```python\n(.*?)```", text, re.S)
        if not m.group(1)
    ]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
