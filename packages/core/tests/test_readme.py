"""Every Python example in the core README runs as written (unless marked `no-test`)."""

from pathlib import Path

from wmkit.core.testing import run_readme_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_readme_examples(README, min_blocks=2)
