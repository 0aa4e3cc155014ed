import numpy as np
import pytest

from wmkit.core import read_video, write_gif, write_video


def _frames(t=6, h=16, w=20):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_lossless_mp4_is_exact(tmp_path):
    frames = _frames()
    path = write_video(tmp_path / "a.mp4", frames, fps=15, lossless=True)
    back, fps = read_video(path)
    assert fps == pytest.approx(15)
    assert np.array_equal(back, frames)


def test_lossy_mp4_is_close_and_handles_odd_sizes(tmp_path):
    frames = np.zeros((4, 15, 17, 3), np.uint8)
    frames[:, :8] = 200
    back, _ = read_video(write_video(tmp_path / "b.mp4", frames, fps=10))
    assert back.shape == (4, 16, 18, 3)
    assert np.abs(back[:, :15, :17].astype(int) - frames).mean() < 6


def test_read_window(tmp_path):
    frames = _frames(t=8)
    path = write_video(tmp_path / "c.mkv", frames, lossless=True)
    part, _ = read_video(path, start=3, num_frames=4)
    assert np.array_equal(part, frames[3:7])
    with pytest.raises(ValueError, match="too few frames"):
        read_video(path, start=6, num_frames=4)


def test_gif(tmp_path):
    path = write_gif(tmp_path / "d.gif", _frames(t=3))
    back, _ = read_video(path)
    assert back.shape == (3, 16, 20, 3)
    assert write_video(tmp_path / "e.gif", _frames(t=2)).suffix == ".gif"


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no video file"):
        read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="cannot decode video file"):
        read_video(bad)
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        write_video(tmp_path / "g.mp4", np.zeros((0, 4, 4, 3), np.uint8))
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_seek_reads_exact_late_windows(tmp_path, suffix):
    frames = np.zeros((40, 8, 8, 3), np.uint8)
    frames[..., 0] = (np.arange(40) * 6)[:, None, None]
    path = write_video(tmp_path / f"s{suffix}", frames, fps=12, lossless=True, gop=8)
    for start in (0, 7, 8, 9, 31, 36):
        part, _ = read_video(path, start=start, num_frames=4)
        assert np.array_equal(part, frames[start : start + 4]), start
