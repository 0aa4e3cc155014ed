"""``wmkit convert``: lists the converter families packages register and dispatches."""

import pytest

from wmkit.core import convert as convert_module
from wmkit.core.cli import main


class _FakeEP:
    name, value = "toy", "toy:convert"

    def __init__(self, seen: dict) -> None:
        self.seen = seen

    def load(self):
        def convert(argv: list[str]) -> int:
            """convert a toy checkpoint"""
            self.seen["argv"] = argv
            return 0

        return convert


def test_convert_lists_families_and_dispatches(monkeypatch, capsys):
    seen: dict = {}
    monkeypatch.setattr(convert_module, "discover_converters", lambda: {"toy": _FakeEP(seen)})
    assert main(["convert", "--help"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "convert a toy checkpoint" in out
    assert main(["convert", "toy", "src.ckpt", "--out", "d"]) == 0
    assert seen["argv"] == ["src.ckpt", "--out", "d"]


def test_convert_unknown_family_suggests(monkeypatch, capsys):
    monkeypatch.setattr(convert_module, "discover_converters", lambda: {"toy": _FakeEP({})})
    assert main(["convert", "tyo"]) == 2
    err = capsys.readouterr().err
    assert "unknown family 'tyo'" in err and "Did you mean: toy" in err
    assert main(["convert"]) == 2


def test_installed_families_are_discovered():
    assert list(convert_module.discover_converters()) == sorted(
        convert_module.discover_converters()
    )


def test_released_tokenizer_readers_are_found_by_family(tmp_path):
    from importlib.metadata import entry_points

    from wmkit.core.convert import RELEASED_TOKENIZER_GROUP, load_released_tokenizer

    names = {ep.name for ep in entry_points(group=RELEASED_TOKENIZER_GROUP)}
    assert "ivideogpt" in names  # registered by wmkit-tokenizers
    with pytest.raises(ImportError, match=r"no reader for released 'nosuch'.*ivideogpt"):
        load_released_tokenizer("nosuch", tmp_path)
    with pytest.raises(FileNotFoundError):  # the registered reader runs on the folder
        load_released_tokenizer("ivideogpt", tmp_path / "missing")


def test_converter_parser_takes_the_source_and_a_required_out(capsys):
    parser = convert_module.converter_parser(
        "toy", "Convert a toy checkpoint.", "checkpoint", "the .pt", "output directory"
    )
    args = parser.parse_args(["a.pt", "--out", "dir"])
    assert (args.checkpoint, args.out) == ("a.pt", "dir")
    with pytest.raises(SystemExit):
        parser.parse_args(["a.pt"])
    assert "--out" in capsys.readouterr().err and parser.prog == "wmkit convert toy"
