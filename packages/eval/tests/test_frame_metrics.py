"""PSNR/SSIM equal torchmetrics' on fixed inputs; LPIPS per frame; streaming means."""

import pytest
import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from wmkit.core.lpips import LPIPS
from wmkit.eval.frame_metrics import (
    PSNR_CAP,
    PerStepMean,
    frame_lpips,
    frame_mse,
    frame_psnr,
    frame_ssim,
    psnr_from_mse,
)


def _pair(seed=0, shape=(2, 3, 3, 24, 24)):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g) * 2 - 1
    pred = (target + 0.2 * torch.randn(shape, generator=g)).clamp(-1, 1)
    return pred, target


def test_psnr_and_ssim_equal_torchmetrics():
    pred, target = _pair()
    p01, t01 = ((pred.flatten(0, 1) + 1) / 2, (target.flatten(0, 1) + 1) / 2)
    ref_psnr = PeakSignalNoiseRatio(data_range=1.0, reduction="none", dim=(1, 2, 3))(p01, t01)
    ref_ssim = StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none")(p01, t01)
    psnr, ssim = frame_psnr(pred, target), frame_ssim(pred, target)
    assert psnr.shape == ssim.shape == (2, 3)
    torch.testing.assert_close(psnr.flatten(), ref_psnr, rtol=0, atol=1e-5)
    torch.testing.assert_close(ssim.flatten(), ref_ssim, rtol=0, atol=1e-6)
    # the classic mean-of-per-image PSNR
    mean_ref = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))(p01, t01)
    torch.testing.assert_close(psnr.mean(), mean_ref, rtol=0, atol=1e-5)


def test_psnr_of_mean_mse_equals_torchmetrics_default_reduction():
    pred, target = _pair()
    p01, t01 = ((pred.flatten(0, 1) + 1) / 2, (target.flatten(0, 1) + 1) / 2)
    metric = PeakSignalNoiseRatio(data_range=1.0)  # accumulates squared errors over updates
    metric.update(p01[:3], t01[:3])
    metric.update(p01[3:], t01[3:])
    mse = frame_mse(pred, target)
    assert mse.shape == (2, 3)
    torch.testing.assert_close(
        psnr_from_mse(mse.mean()).float(), metric.compute(), atol=1e-4, rtol=0
    )
    # unlike a mean of capped per-frame values, one exact copy does not dominate the result
    half = torch.cat([target[:, :1], pred[:, 1:]], 1)
    assert frame_psnr(half, target).mean() > 40
    assert psnr_from_mse(frame_mse(half, target).mean()) < frame_psnr(pred, target).mean() + 2
    assert psnr_from_mse(0.0) == PSNR_CAP
    with pytest.raises(ValueError, match="mse must be >= 0"):
        psnr_from_mse(-1.0)


def test_identical_frames_are_capped_and_perfect():
    _, target = _pair()
    assert torch.all(frame_psnr(target, target) == PSNR_CAP)
    torch.testing.assert_close(frame_ssim(target, target), torch.ones(2, 3))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_per_step_mean_streams():
    pred, target = _pair(shape=(6, 4, 3, 16, 16))
    values = frame_psnr(pred, target)
    m = PerStepMean(4)
    m.update(values[:2])
    m.update(values[2:])
    torch.testing.assert_close(m.compute(), values.double().mean(0))
    assert m.overall() == pytest.approx(float(values.double().mean()))
    with pytest.raises(ValueError, match=r"values must be \[B, 4\]"):
        m.update(values[:, :3])
    with pytest.raises(RuntimeError, match="before any update"):
        PerStepMean(4).compute()


def test_lpips_per_frame_matches_direct_call(weights):
    lpips = LPIPS("alex", weights=weights["lpips"])
    pred, target = _pair(shape=(2, 2, 3, 32, 32))
    got = frame_lpips(pred, target, lpips)
    assert got.shape == (2, 2)
    torch.testing.assert_close(got[1, 0], lpips(pred[1, :1], target[1, :1])[0])


def test_rejects_bad_inputs():
    pred, target = _pair()
    with pytest.raises(ValueError, match="same shape"):
        frame_psnr(pred, target[:, :2])
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        frame_psnr(pred[0], target[0])
    with pytest.raises(ValueError, match="at least 11x11"):
        frame_ssim(pred[..., :8, :8], target[..., :8, :8])
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        frame_psnr(pred * 5, target)
