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


def test_dataset_context_frames_take_the_resolution_asked(tmp_path):
    from wmkit.apps.play.cli import _dataset_context
    from wmkit.core.testing import moving_squares

    root = moving_squares(6, 8, 16, seed=0).save(tmp_path / "squares", frame_format="npz")
    as_recorded = _dataset_context(root, frames=2, seed=0)()
    assert as_recorded.shape == (1, 2, 3, 16, 16)
    resized = _dataset_context(root, frames=2, seed=0, resolution=32)()
    assert resized.shape == (1, 2, 3, 32, 32)
    assert _parser().parse_args([]).resolution is None  # an environment still defaults to 64
