"""The documentation site (`mkdocs.yml`, `docs/`): it builds under `--strict`, every page in
its nav exists, the guides' commands exist as written, and their examples run.

Every ```` ```bash ```` block of the site's own pages (not the benchmark pages, which record
the commands that made their tables) that holds a `wmkit` command carries a marker comment
right before it:

- ``<!-- tested: how -->``: this module runs its commands end to end with tiny budgets
  (:data:`TINY`), in one temporary directory, in the order of :data:`TESTED_PAGES`;
- ``<!-- gpu-only: reason -->`` or ``<!-- not-run: reason -->``: not run here.

Whatever the marker, every `wmkit` command is checked: its sub-command must be installed, a
stage's ``fit|validate|test`` must parse with its config (LightningCLI ``--print_config``,
which checks every ``--model...``/``--data...``/``--trainer...`` override against the
classes), and any other command's options must appear in its ``--help``. Python blocks run
as written unless marked ``no-test`` (``wmkit.core.testing.run_readme_examples``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wmkit.core.cli import discover_commands, main
from wmkit.core.testing import readme_examples, run_readme_examples

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# Pages whose shell blocks are checked: the site's own pages, not the benchmark records.
PAGES = sorted([*DOCS.glob("*.md"), *(DOCS / "guides").glob("*.md")])
# Pages with tested blocks; they run in this order, in one directory.
TESTED_PAGES = [
    "guides/train-on-your-data.md",
    "guides/causalize.md",
    "guides/latent-actions.md",
]
STAGES = {"tokenizer", "ar-world", "diffusion-world", "latent-action"}
MARKERS = ("tested", "gpu-only", "not-run")

_BLOCK = re.compile(r"(?:<!--\s*([a-z-]+)\s*:([^>]*)-->\s*)?```bash\n(.*?)```", re.S)

pytestmark = pytest.mark.skipif(not MKDOCS_YML.is_file(), reason="no mkdocs.yml in this checkout")


def shell_blocks(page: Path) -> list[tuple[str | None, str, list[list[str]]]]:
    """``(marker, reason, commands)`` of each bash block; a command is its ``wmkit`` argv
    (``uv run`` dropped, continuation lines joined, comments removed)."""
    blocks = []
    for m in _BLOCK.finditer(page.read_text(encoding="utf-8")):
        text = m.group(3).replace("\\\n", " ")
        commands = []
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["uv", "run"]:
                words = words[2:]
            if words[:1] == ["wmkit"]:
                commands.append(words[1:])
        blocks.append((m.group(1), (m.group(2) or "").strip(), commands))
    return blocks


def all_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{p.relative_to(DOCS)}: wmkit {shlex.join(argv)}", argv)
        for p in PAGES
        for _, _, commands in shell_blocks(p)
        for argv in commands
    ]


def run_wmkit(argv: list[str]) -> tuple[int, str]:
    """``wmkit ARGV`` in this process (no interpreter start per command): exit code, stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(code or 0), out.getvalue()


def _nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        if isinstance(item, str):
            pages.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


class _Loader(yaml.SafeLoader):
    """mkdocs.yml with its ``!!python/name:`` tags read as plain strings."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)


def test_nav_pages_exist_and_every_page_is_in_the_nav():
    config = yaml.load(MKDOCS_YML.read_text(), Loader=_Loader)
    nav = _nav_pages(config["nav"])
    missing = [p for p in nav if not (DOCS / p).is_file()]
    assert not missing, f"nav names pages that do not exist: {missing}"
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - set(nav) == set(), "pages outside the nav (mkdocs warns: add them)"
    for required in ("index.md", "getting-started.md", "concepts.md"):
        assert required in nav


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the workspace dev group has it)")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] missing")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index.html", "getting-started/index.html", "api/core/index.html"):
        assert (tmp_path / "site" / page).is_file()
    api = (tmp_path / "site" / "api" / "core" / "index.html").read_text()
    assert 'id="wmkit.core.ActionSpec"' in api  # the reference is generated, not empty


def test_every_shell_block_with_a_wmkit_command_is_marked():
    unmarked = [
        f"{p.relative_to(DOCS)} block {i}"
        for p in PAGES
        for i, (marker, _, commands) in enumerate(shell_blocks(p))
        if commands and marker not in MARKERS
    ]
    assert not unmarked, f"mark these blocks tested / gpu-only / not-run: {unmarked}"
    tested = {
        str(p.relative_to(DOCS))
        for p in PAGES
        for marker, _, _ in shell_blocks(p)
        if marker == "tested"
    }
    assert tested == set(TESTED_PAGES), "TESTED_PAGES must list every page with a tested block"
    assert all(reason for p in PAGES for m, reason, c in shell_blocks(p) if m), "give a reason"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "argv"), all_commands(), ids=lambda x: x if isinstance(x, str) else "-"
)
def test_guide_command_exists_as_written(where, argv, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs are named from the repository root
    assert argv and argv[0] in discover_commands(), f"{where}: no such command"
    if argv[0] in STAGES and argv[1] in ("fit", "validate", "test"):
        config = argv[argv.index("-c") + 1] if "-c" in argv else None
        if config is not None and config.startswith("runs/"):  # written by a quickstart run
            code, _ = run_wmkit([argv[0], argv[1], "--help"])
            assert code == 0, f"{where}: --help failed"
            return
        if config is not None:
            assert (ROOT / config).is_file(), f"{where}: no config {config}"
        code, out = run_wmkit([*argv, "--print_config"])  # parses, instantiates nothing
        assert code == 0 and "trainer:" in out, f"{where}: does not parse\n{out}"
        return
    words = list(argv)
    first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    code, help_text = run_wmkit([*words[:first_option], "--help"])
    assert code == 0, f"{where}: --help failed"
    for word in words[first_option:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert re.search(rf"{re.escape(option)}\b", help_text), f"{where}: unknown {option}"


# Tiny budgets for the tested blocks: per command, what replaces or joins its options.
TINY = {
    "record": {"--episodes": "3", "--max-steps": "12", "--no-progress": None},
    "latent-action probe": {"--steps": "5"},
}


def tiny(argv: list[str]) -> list[str]:
    """``argv`` with a tiny budget: fewer episodes and steps, ``fast_dev_run`` for stages,
    configs named by absolute path (the commands run in a temporary directory)."""
    argv = [str(ROOT / a) if a.startswith("packages/") else a for a in argv]
    if argv[0] in STAGES and argv[1] == "fit":
        argv = [*argv, "--trainer.fast_dev_run=true"]
        config = yaml.safe_load(Path(argv[argv.index("-c") + 1]).read_text())
        if config["data"]["class_path"].endswith("EpisodeDataModule"):
            argv += ["--data.init_args.num_workers=0", "--data.init_args.batch_size=2"]
        return argv
    key = argv[0] if argv[0] == "record" else " ".join(argv[:2])
    for option, value in TINY.get(key, {}).items():
        if option in argv:
            i = argv.index(option)
            argv = argv[:i] + argv[i + 2 :]
        argv += [option] if value is None else [option, value]
    return argv


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tested_guide_blocks_run_with_tiny_budgets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = []
    for page in TESTED_PAGES:
        for marker, _, commands in shell_blocks(DOCS / page):
            if marker != "tested":
                continue
            for argv in commands:
                code, out = run_wmkit(tiny(argv))
                assert code == 0, f"{page}: wmkit {shlex.join(tiny(argv))} exited {code}\n{out}"
                ran.append(argv[:2])
    assert (tmp_path / "out" / "world-crafter32" / "config.json").is_file()
    assert (tmp_path / "out" / "latent-action" / "config.json").is_file()
    assert len(ran) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if readme_examples(p)], ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_readme_examples(page)


def _benchmark_rows(readme: Path) -> list[str]:
    """Table rows holding a decimal figure under a heading about benchmarks or measurements."""
    stack: list[tuple[int, str]] = []
    rows = []
    in_code = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"(#+) (.*)", line)):
            level = len(m.group(1))
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, m.group(2))]
        elif (
            line.startswith("|")
            and re.search(r"\d\.\d", line)
            and any(re.search(r"benchmark|measured", t, re.I) for _, t in stack)
        ):
            rows.append(line)
    return rows


def test_no_benchmark_table_of_a_readme_is_missing_from_the_site():
    site = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "benchmarks").glob("*.md"))
    missing = [
        f"{readme.relative_to(ROOT)}: {row[:80]}"
        for readme in sorted(ROOT.glob("packages/*/README.md"))
        for row in _benchmark_rows(readme)
        if row not in site
    ]
    assert not missing, "copy these measured rows onto docs/benchmarks/<package>.md:\n" + "\n".join(
        missing
    )


def test_package_readmes_stay_short():
    """A package README says what the package is, how to install and use it, and links to the
    site; the lab notes live on the benchmark pages (at most ~150 lines)."""
    readmes = sorted((ROOT / "packages").glob("*/README.md"))
    assert len(readmes) >= 8
    long = {p.parent.name: n for p in readmes if (n := len(p.read_text().splitlines())) > 150}
    assert not long, f"package READMEs over 150 lines: {long}"
