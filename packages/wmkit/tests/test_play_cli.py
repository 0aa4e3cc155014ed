import pytest

from wmkit.apps.play.cli import _parser, remote_token


def test_a_host_off_loopback_needs_allow_remote_and_gets_a_token():
    assert remote_token(_parser().parse_args([])) is None
    assert remote_token(_parser().parse_args(["--host", "localhost"])) is None
    with pytest.raises(SystemExit, match="--allow-remote"):
        remote_token(_parser().parse_args(["--host", "0.0.0.0"]))
    args = _parser().parse_args(["--host", "0.0.0.0", "--allow-remote"])
    first, second = remote_token(args), remote_token(args)
    assert first and second and first != second and len(first) >= 20
