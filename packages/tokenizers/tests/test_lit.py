"""VidTokModule: the loss goes down on real frames, optional terms switch on and off as
configured, EMA / export / two-stage initialisation / resume behave."""

import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import wmkit.core.lpips
from wmkit.core.export import ExportPretrained
from wmkit.core.video import to_float_video
from wmkit.core.weights import MissingWeightsError
from wmkit.tokenizers import PatchDiscriminator3D, VidTokTokenizer, losses
from wmkit.tokenizers.lit import VidTokModule

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_lit_helpers import clip_loader, cpu_trainer

FIXTURE = Path(__file__).parent / "fixtures" / "crafter_clips.npz"


def crafter_batch() -> torch.Tensor:
    """Four recorded Crafter clips, 9 frames at 32x32 → ``[4, 9, 3, 32, 32]`` in [-1, 1]."""
    return to_float_video(np.load(FIXTURE)["frames"])


@pytest.fixture(autouse=True)
def no_lpips_weights(monkeypatch):
    """Tests never depend on the LPIPS weights: by default they are 'missing'."""

    def missing(*args, **kwargs):
        raise MissingWeightsError("/nonexistent/lpips-alex.safetensors", "LPIPS (alex) weights")

    monkeypatch.setattr(wmkit.core.lpips, "LPIPS", missing)
    monkeypatch.setattr(losses, "_warned", set())


@pytest.mark.parametrize("reg", ["kl", "fsq"])
def test_loss_decreases_on_fixed_real_batch(reg):
    torch.manual_seed(0)
    frames = crafter_batch()[:1]
    tok = VidTokTokenizer("tiny", regularizer=reg)
    module = VidTokModule(tok, lr=5e-3, perceptual_weight=0.0)
    opt = module.configure_optimizers()[0]
    history = []
    for _ in range(25):
        out = tok(frames)
        loss = module._generator_losses(frames, out, adversarial=False)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-5:]) < 0.6 * np.mean(history[:3]), history


def test_missing_lpips_warns_once_and_trains_without_it():
    module = VidTokModule(VidTokTokenizer("tiny"), perceptual_weight=1.0)
    frames = crafter_batch()[:1]
    with pytest.warns(RuntimeWarning, match="perceptual loss disabled") as record:
        out = module.tokenizer(frames)
        first = module._generator_losses(frames, out, False)
        module._generator_losses(frames, out, False)
    assert len([w for w in record if "perceptual" in str(w.message)]) == 1
    assert "perceptual" not in first and torch.isfinite(first["loss"])


def test_perceptual_term_used_when_available(monkeypatch):
    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net="alex", weights=None, check_range=True):
            super().__init__()

        def forward(self, x, y):
            return (x - y).abs().flatten(1).mean(1)

    monkeypatch.setattr(wmkit.core.lpips, "LPIPS", FakeLPIPS)
    module = VidTokModule(VidTokTokenizer("tiny"), perceptual_weight=2.0, l1_weight=0.0)
    frames = crafter_batch()[:1]
    out = module.tokenizer(frames)
    got = module._generator_losses(frames, out, False)
    torch.testing.assert_close(got["perceptual"], got["l1"])
    torch.testing.assert_close(got["loss"], 2.0 * got["l1"] + 1e-6 * got["kl"])


def test_mse_term_is_added_with_its_weight():
    torch.manual_seed(0)
    frames = crafter_batch()[:1]
    plain = VidTokModule(VidTokTokenizer("tiny"), perceptual_weight=0.0)
    with_mse = VidTokModule(VidTokTokenizer("tiny"), perceptual_weight=0.0, mse_weight=3.0)
    with_mse.tokenizer.load_state_dict(plain.tokenizer.state_dict())
    out = plain.tokenizer(frames)
    base = plain._generator_losses(frames, out, False)
    got = with_mse._generator_losses(frames, out, False)
    assert "mse" not in base
    torch.testing.assert_close(got["mse"], ((out.reconstruction - frames) ** 2).mean())
    torch.testing.assert_close(got["loss"], base["loss"] + 3.0 * got["mse"])


def test_ema_weights_are_exported_at_fit_end(tmp_path):
    torch.manual_seed(0)
    tok = VidTokTokenizer("tiny", regularizer="fsq")
    module = VidTokModule(
        tok,
        lr=1e-3,
        perceptual_weight=0.0,
        discriminator=PatchDiscriminator3D(channels=4, layers=2),
        adversarial_start_step=2,
        ema_decay=0.9,
        export_dir=str(tmp_path / "export"),
    )
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append("train/d_hinge" in trainer.callback_metrics)

    t = cpu_trainer(max_epochs=1, limit_val_batches=0, callbacks=[Spy(), ExportPretrained()])
    t.fit(module, clip_loader(crafter_batch(), 1))
    assert seen == [False, False]  # adversarial_start_step=2: not yet
    assert int(module.train_steps) == 2
    ema = module.ema.module
    assert any(not torch.equal(a, b) for a, b in zip(ema.parameters(), tok.parameters()))
    exported = VidTokTokenizer.from_pretrained(tmp_path / "export")
    for a, b in zip(exported.state_dict().values(), ema.state_dict().values()):
        assert torch.equal(a, b)


def test_adversarial_loss_after_start():
    torch.manual_seed(0)
    module = VidTokModule(
        VidTokTokenizer("tiny"),
        perceptual_weight=0.0,
        discriminator=PatchDiscriminator3D(channels=4, layers=2),
        adversarial_start_step=1,
    )
    flags = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            flags.append("train/g_adv" in trainer.callback_metrics)

    cpu_trainer(max_epochs=1, limit_val_batches=0, callbacks=[Spy()]).fit(
        module, clip_loader(crafter_batch(), 2)
    )
    assert flags[0] is False and all(flags[1:]) and len(flags) == 4


def test_stage_two_loads_weights_and_trains_decoder_only(tmp_path):
    torch.manual_seed(0)
    stage1 = VidTokTokenizer("tiny")
    stage1.save_pretrained(tmp_path / "stage1")
    module = VidTokModule(
        VidTokTokenizer("tiny"),
        lr=1e-2,
        perceptual_weight=0.0,
        freeze_encoder=True,
        init_from=str(tmp_path / "stage1"),
    )
    before = {k: v.clone() for k, v in module.tokenizer.state_dict().items()}
    for k, v in stage1.state_dict().items():
        assert torch.equal(before[k], v)
    cpu_trainer(max_steps=2, limit_val_batches=0).fit(module, clip_loader(crafter_batch(), 1))
    after = module.tokenizer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("decoder."))
    with pytest.raises(ValueError, match="does not match"):
        VidTokModule(VidTokTokenizer("tiny", latent_channels=8), init_from=str(tmp_path / "stage1"))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        VidTokModule(VidTokTokenizer("tiny"), init_from=str(tmp_path / "nowhere"))


def test_validation_logs_metrics_and_reconstruction_video(tmp_path):
    module = VidTokModule(VidTokTokenizer("tiny"), perceptual_weight=0.0)
    t = cpu_trainer(max_epochs=1, default_root_dir=str(tmp_path))
    t.fit(module, clip_loader(crafter_batch(), 1), clip_loader(crafter_batch()[:2], 1))
    assert {"val/psnr", "val/l1", "val/mse"} <= set(t.callback_metrics)
    assert list((tmp_path / "reconstructions").glob("epoch*.gif"))
    metrics = t.test(module, clip_loader(crafter_batch()[:2], 1), verbose=False)[0]
    assert 0 < metrics["test/ssim"] <= 1 and metrics["test/psnr"] > 0
