"""Every Python example in the diffusion-world README, and in the usage notes of its API page
(`docs/api/diffusion-world.md`), runs as written (unless marked `no-test`)."""

from pathlib import Path

import pytest

from wmkit.core.testing import run_readme_examples

README = Path(__file__).resolve().parents[1] / "README.md"
API_PAGE = Path(__file__).resolve().parents[3] / "docs" / "api" / "diffusion-world.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_readme_examples(README, min_blocks=1)


@pytest.mark.skipif(not API_PAGE.is_file(), reason="no docs/ in this checkout")
def test_api_page_usage_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_readme_examples(API_PAGE, min_blocks=7)
