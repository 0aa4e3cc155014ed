"""``wmkit.core.testing``'s parity-fixture lookup and script loader: the environment variable
wins over the checkout's ``../shared/parity``, the skip marker skips exactly when the path is
absent (naming it), and a loaded script is registered only while in use."""

import sys
from pathlib import Path

import pytest

from wmkit.core.testing import loaded_script, needs_parity, parity_dir


def test_parity_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WMKIT_PARITY_DIR", str(tmp_path))
    assert parity_dir("diamond") == tmp_path / "diamond"
    monkeypatch.delenv("WMKIT_PARITY_DIR")
    checkout = Path(__file__).resolve().parents[3]  # the root holding packages/
    assert parity_dir("diamond") == checkout.parent / "shared" / "parity" / "diamond"


def test_needs_parity_skips_only_without_the_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("WMKIT_PARITY_DIR", str(tmp_path))
    absent = needs_parity("diamond", "atari")
    assert absent.args == (True,) and str(tmp_path / "diamond" / "atari") in absent.kwargs["reason"]
    (tmp_path / "diamond" / "atari").mkdir(parents=True)
    present = needs_parity("diamond", "atari")
    assert present.args == (False,)
    (tmp_path / "diamond" / "atari" / "agent.pt").write_bytes(b"")
    assert needs_parity("diamond", "atari", "agent.pt").args == (False,)


def test_loaded_script_is_registered_while_in_use(tmp_path):
    script = tmp_path / "wmkit_tool_under_test.py"
    script.write_text("import dataclasses\n\n@dataclasses.dataclass\nclass Row:\n    x: int = 1\n")
    with loaded_script(script) as module:
        assert module.Row().x == 1  # dataclasses resolve the module through sys.modules
        assert sys.modules["wmkit_tool_under_test"] is module
    assert "wmkit_tool_under_test" not in sys.modules
    with pytest.raises(FileNotFoundError, match="no script at"), loaded_script(tmp_path / "x.py"):
        pass
