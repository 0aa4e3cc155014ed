import numpy as np
import pytest
import torch

from wmkit.core import check_video, frame_grid, resize_video, to_float_video, to_uint8_frames


def test_uint8_float_round_trip_is_exact():
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    video = to_float_video(frames)
    assert video.shape == (1, 5, 3, 8, 12) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    assert video[0, 0, 0, 0, 0].item() == pytest.approx(frames[0, 0, 0, 0] / 127.5 - 1)
    back = to_uint8_frames(video)
    assert back.shape == (1, 5, 8, 12, 3)
    assert np.array_equal(back[0].numpy(), frames)


def test_batched_frames_and_tensor_input():
    frames = torch.randint(0, 256, (2, 3, 4, 4, 1), dtype=torch.uint8)
    assert to_float_video(frames).shape == (2, 3, 1, 4, 4)


@pytest.mark.parametrize(
    ("video", "exc", "match"),
    [
        (torch.zeros(3, 3, 8, 8), ValueError, r"\[B, T, C, H, W\].*got shape \(3, 3, 8, 8\)"),
        (torch.zeros(1, 3, 3, 8, 8, dtype=torch.uint8), TypeError, "to_float_video"),
        (
            torch.full((1, 1, 3, 4, 4), 2.0),
            ValueError,
            r"must be in \[-1, 1\]; got values in \[2, 2\]",
        ),
        (torch.full((1, 1, 3, 4, 4), float("nan")), ValueError, "NaN"),
        (np.zeros((1, 1, 3, 4, 4)), TypeError, "torch.Tensor"),
    ],
)
def test_check_video_errors(video, exc, match):
    with pytest.raises(exc, match=match):
        check_video(video)


def test_check_video_channels():
    with pytest.raises(ValueError, match="3 channels"):
        check_video(torch.zeros(1, 1, 1, 4, 4), channels=3)


def test_to_float_rejects_bad_frames():
    with pytest.raises(TypeError, match="uint8"):
        to_float_video(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        to_float_video(np.zeros((2, 3, 4, 4), np.uint8))


def test_resize_preserves_flat_regions_and_range():
    video = torch.zeros(2, 3, 3, 16, 16)
    video[..., :8, :] = 1.0
    small = resize_video(video, 8)
    assert small.shape == (2, 3, 3, 8, 8)
    assert torch.all(small[..., :4, :] == 1) and torch.all(small[..., 4:, :] == 0)
    assert resize_video(video, (4, 8), mode="bilinear").shape == (2, 3, 3, 4, 8)


def test_frame_grid_places_columns():
    a = torch.full((1, 2, 3, 4, 4), -1.0)
    b = torch.full((1, 2, 3, 4, 4), 1.0)
    grid = frame_grid([a, b], pad=2, pad_value=0.0)
    assert grid.shape == (2, 4, 10, 3) and grid.dtype == torch.uint8
    assert (grid[:, :, :4] == 0).all() and (grid[:, :, 6:] == 255).all()
    assert (grid[:, :, 4:6] == 128).all()
    with pytest.raises(ValueError, match=r"videos\[1\]"):
        frame_grid([a, torch.zeros(1, 3, 3, 4, 4)])
