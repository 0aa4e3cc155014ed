import numpy as np
import pytest

from wmkit.core.data.source import EpisodeSource
from wmkit.core.data.video_folder import VideoFolderSource, resize_frames
from wmkit.core.testing import count_decoded_frames
from wmkit.core.video_io import write_video

_BASE = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)


def _blocks(n: int, offset: int = 0) -> np.ndarray:
    """4x4 constant blocks; block (0, 0) encodes the frame index: ``[n, 4, 4, 3]``."""
    blocks = np.repeat(_BASE[None], n, axis=0)
    blocks[:, 0, 0, :] = ((np.arange(n) + offset) * 8 % 256)[:, None]
    return blocks


def _frames(n: int, offset: int = 0) -> np.ndarray:
    """``uint8 [n, 16, 16, 3]``: each block 4x4 pixels, so an area resize to 4 is exact."""
    return _blocks(n, offset).repeat(4, axis=1).repeat(4, axis=2)


@pytest.fixture
def folder(tmp_path):
    write_video(tmp_path / "a.mp4", _frames(40), fps=10, lossless=True, gop=8)
    write_video(tmp_path / "sub" / "b.mkv", _frames(23, offset=100), fps=15, lossless=True, gop=8)
    (tmp_path / "notes.txt").write_text("not a video")
    return tmp_path


def test_reads_exact_windows_lengths_and_fps(folder):
    src = VideoFolderSource(folder, pattern="**/*")
    assert isinstance(src, EpisodeSource)
    assert [p.name for p in src.paths] == ["a.mp4", "b.mkv"]
    assert len(src) == 2
    assert [src.episode_length(i) for i in range(2)] == [40, 23]  # mkv: counted by decoding
    assert src.fps == pytest.approx(10) and src.episode_fps(1) == pytest.approx(15)
    assert src.action_spec is None
    assert np.array_equal(src.read_frames(0, 27, 31), _frames(40)[27:31])
    assert np.array_equal(src.read_frames(1, 5, 12), _frames(23, offset=100)[5:12])
    assert np.array_equal(src.read_frames(0, 36, 40), _frames(40)[36:40])
    assert src.read_frames(0, 3, 3).shape == (0, 16, 16, 3)
    assert src.read_steps(0, 0, 5) == {}


def test_default_pattern_takes_mp4_only(folder):
    src = VideoFolderSource(folder)
    assert [p.name for p in src.paths] == ["a.mp4"]


def test_resize_is_area_average(folder):
    src = VideoFolderSource(folder, pattern="**/*", resolution=4)
    got = src.read_frames(1, 10, 14)
    assert got.shape == (4, 4, 4, 3)
    assert np.array_equal(got, _blocks(23, offset=100)[10:14])
    assert src.read_frames(0, 0, 0).shape == (0, 4, 4, 3)
    up = resize_frames(_frames(2), 32)
    assert up.shape == (2, 32, 32, 3) and up.dtype == np.uint8


def test_late_window_does_not_decode_from_start(folder, monkeypatch):
    src = VideoFolderSource(folder)
    src.episode_length(0)  # probe before counting
    counter = count_decoded_frames(monkeypatch)
    got = src.read_frames(0, 33, 37)
    assert np.array_equal(got, _frames(40)[33:37])
    assert 0 < counter[0] <= 8 + 4 + 1  # at most a GOP before the window, not 38 frames


def test_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="no videos matching"):
        VideoFolderSource(tmp_path / "sub", pattern="*.webm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoFolderSource(tmp_path / "nowhere")
    src = VideoFolderSource(folder)
    with pytest.raises(ValueError, match=r"window \[38, 41\) out of range for episode 0"):
        src.read_frames(0, 38, 41)
    with pytest.raises(ValueError, match="out of range"):
        src.read_steps(0, 5, 2)
    with pytest.raises(IndexError, match="episode 1 out of range"):
        src.episode_length(1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="broken.mp4"):
        VideoFolderSource(bad)
    write_video(bad / "a.mp4", _frames(4), lossless=True)
    src = VideoFolderSource(bad)  # the good file comes first; the broken one fails on use
    with pytest.raises(ValueError, match="broken.mp4"):
        src.episode_length(1)
