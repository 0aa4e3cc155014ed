"""``evaluate_reconstruction`` and ``wmkit eval tokenizer``: a tokenizer's reconstruction
scored with the standard frame metrics, on any recorded dataset."""

import pytest

from wmkit.core import to_float_video
from wmkit.core.testing import ToyVideoTokenizer, moving_squares
from wmkit.core.testing.toys import ToyTokenizer
from wmkit.eval.baselines import tokenizer_reconstruction
from wmkit.eval.cli import main
from wmkit.eval.frame_metrics import frame_mse, frame_psnr, frame_ssim, psnr_from_mse
from wmkit.eval.reconstruction import evaluate_reconstruction


def test_metrics_match_the_frame_metrics(squares):
    frames = squares[0][:4, :9]
    tok = ToyTokenizer(patch=4, levels=4)
    recon = tok.decode(tok.encode(frames)).clamp(-1, 1)
    batches = [{"frames": frames[:2]}, {"frames": frames[2:]}]
    got = evaluate_reconstruction(tok, batches)
    assert got["frames"] == 36 and got["clips"] == 4 and "lpips" not in got
    assert got["psnr"] == pytest.approx(float(psnr_from_mse(frame_mse(recon, frames).mean())))
    assert got["psnr_mean"] == pytest.approx(frame_psnr(recon, frames).mean().item(), rel=1e-5)
    assert got["ssim"] == pytest.approx(frame_ssim(recon, frames).mean().item(), rel=1e-5)
    lp = evaluate_reconstruction(tok, batches[:1], lpips=lambda a, b: (a - b).abs().mean((1, 2, 3)))
    assert lp["lpips"] > 0 and lp["clips"] == 2
    with pytest.raises(ValueError, match="no clips"):
        evaluate_reconstruction(tok, batches, max_batches=0)


def test_cli_reports_a_tokenizer_on_a_dataset(tmp_path, capsys):
    eps = moving_squares(num_episodes=4, length=10, size=16, seed=1)
    eps.save(tmp_path / "data", fps=4, frame_format="npz")
    ToyTokenizer(patch=2, levels=8).save_pretrained(tmp_path / "tok")
    code = main([
        "tokenizer", "--tokenizer", str(tmp_path / "tok"), "--data", str(tmp_path / "data"),
        "--split", "all", "--clip-length", "5", "--lpips", "off",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| psnr |" in out and "| ssim |" in out and "lpips" not in out


def test_a_temporally_compressing_tokenizer_reconstructs_a_clip_of_any_length():
    """VidTok-style 4x temporal compression encodes 1 + 4n frames: an 8-frame clip (2 context
    + 6 predicted, the quickstart's) is padded with copies of its first frame, and the
    reconstruction of its frames is exact for this piecewise-flat video."""
    clip = to_float_video(moving_squares(num_episodes=2, length=8, size=16, seed=0).frames)
    tok = ToyVideoTokenizer(frames_per_latent=4, patch=1)  # [2, 8, 3, 16, 16] above
    with pytest.raises(ValueError, match="1 \\+ n·4"):
        tok.encode(clip)
    recon = tokenizer_reconstruction(tok, clip, 6)
    assert recon.shape == (2, 6, 3, 16, 16)
    assert (recon - clip[:, 2:]).abs().max() < 1 / 127.5 + 1e-6
    assert evaluate_reconstruction(tok, [{"frames": clip}])["frames"] == 16
