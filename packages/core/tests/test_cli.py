import os
import subprocess
import sys
import textwrap

import pytest

from wmkit.core import Command
from wmkit.core import cli as cli_module
from wmkit.core.cli import discover_commands, main


def test_help_lists_installed_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: wmkit <command>" in out
    assert "info" in out and "show installed wmkit packages" in out


def test_no_arguments_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_unknown_command_suggests(capsys):
    assert main(["inf"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'inf'" in err and "Did you mean: info" in err


def test_info_runs(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "wmkit-core" in out and "torch" in out


def test_runs_discovered_command(monkeypatch):
    seen = {}

    class FakeEP:
        name, value = "hello", "fake:command"

        def load(self):
            return Command(help="say hello", run=lambda argv: seen.setdefault("argv", argv) and 3)

    monkeypatch.setattr(cli_module, "discover_commands", lambda: {"hello": FakeEP()})
    assert main(["hello", "a", "--b"]) == 3
    assert seen["argv"] == ["a", "--b"]


def test_broken_plugin_does_not_break_help(monkeypatch, capsys):
    class BrokenEP:
        name, value = "broken", "nowhere:command"

        def load(self):
            raise ImportError("no module named nowhere")

    monkeypatch.setattr(cli_module, "discover_commands", lambda: {"broken": BrokenEP()})
    assert main(["--help"]) == 0
    assert "failed to load nowhere:command" in capsys.readouterr().out


def test_entry_point_plugin_in_subprocess(tmp_path):
    """A package that declares a `wmkit.commands` entry point shows up without core knowing it."""
    (tmp_path / "wmkit_fakeplugin.py").write_text(
        textwrap.dedent("""
        from wmkit.core import Command
        def _run(argv):
            print("plugin ran with", argv)
            return 0
        command = Command(help="a plugin command", run=_run)
    """)
    )
    dist = tmp_path / "wmkit_fakeplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wmkit-fakeplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[wmkit.commands]\nfake = wmkit_fakeplugin:command\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    # one fresh interpreter for both commands (each start imports torch): --help, then the plugin
    code = textwrap.dedent("""
        import sys
        from wmkit.core.cli import main
        print("--help exit code", main(["--help"]))
        print("=== help ends ===")
        sys.exit(main(["fake", "x"]))
    """)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    help_out, plugin_out = run.stdout.split("=== help ends ===")
    assert "fake" in help_out and "a plugin command" in help_out
    assert "--help exit code 0" in help_out
    assert "plugin ran with ['x']" in plugin_out


def test_console_script_installed():
    """The `wmkit` script exists in the environment and exits 2 on an unknown command."""
    exe = os.path.join(os.path.dirname(sys.executable), "wmkit")
    if not os.path.exists(exe):
        pytest.skip("wmkit console script not installed in this environment")
    result = subprocess.run([exe, "definitely-not-a-command"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_discover_commands_is_sorted():
    names = list(discover_commands())
    assert names == sorted(names) and "info" in names
