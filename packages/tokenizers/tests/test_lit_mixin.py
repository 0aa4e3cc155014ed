"""TokenizerLitMixin: every tokenizer LightningModule logs its metrics as ``val/…`` and
``test/…``, writes the reconstruction GIF and exports its tokenizer when fit ends."""

import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from wmkit.core.export import ExportPretrained
from wmkit.core.video import to_float_video
from wmkit.tokenizers import (
    IVIDEOGPT_TOKENIZER_SIZES,
    CompressiveModule,
    CompressiveTokenizer,
    IVideoGPTModule,
    IVideoGPTTokenizer,
    PatchVQModule,
    PatchVQTokenizer,
    VidTokModule,
    VidTokTokenizer,
)

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_lit_helpers import clip_loader, cpu_trainer

FIXTURE = Path(__file__).parent / "fixtures" / "crafter_clips.npz"


def vidtok(export_dir: str) -> L.LightningModule:
    tok = VidTokTokenizer("tiny")
    return VidTokModule(tok, perceptual_weight=0.0, ema_decay=0.9, export_dir=export_dir)


def compressive(export_dir: str) -> L.LightningModule:
    tok = CompressiveTokenizer(size="tiny", spatial_compression=4, future_patch=2)
    return CompressiveModule(tok, perceptual_weight=0.0, export_dir=export_dir)


def ivideogpt(export_dir: str) -> L.LightningModule:
    tok = IVideoGPTTokenizer(**{**IVIDEOGPT_TOKENIZER_SIZES["tiny"], "resolution": 32})
    return IVideoGPTModule(tok, perceptual_weight=0.0, export_dir=export_dir)


def patch_vq(export_dir: str) -> L.LightningModule:
    tok = PatchVQTokenizer(4, 16)
    return PatchVQModule(tok, kmeans_iterations=2, reseed_every=0, export_dir=export_dir)


#: Each module's validation metrics, then the ones only its test adds.
CASES = {
    "vidtok": (vidtok, {"l1", "mse", "psnr"}, {"ssim"}),
    "compressive": (
        compressive,
        {"l1", "psnr", "future_psnr", "future_l1", "context_psnr"},
        {"future_ssim"},
    ),
    "ivideogpt": (ivideogpt, {"l1", "psnr", "future_psnr", "context_psnr"}, {"future_ssim"}),
    "patch_vq": (patch_vq, {"psnr", "mse", "codes_used"}, {"ssim"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_evaluation_logs_split_metrics_writes_gif_and_exports(name, tmp_path):
    make, val_names, test_only = CASES[name]
    torch.manual_seed(0)
    module = make(str(tmp_path / "export"))
    frames = to_float_video(np.load(FIXTURE)["frames"])[:2]  # [2, 9, 3, 32, 32]
    trainer = cpu_trainer(
        max_steps=1, default_root_dir=str(tmp_path), callbacks=[ExportPretrained()]
    )
    trainer.fit(module, clip_loader(frames), clip_loader(frames))
    logged = {k for k in trainer.callback_metrics if k.startswith("val/")}
    assert logged == {f"val/{k}" for k in val_names}
    assert list((tmp_path / "reconstructions").glob("epoch0000.gif"))

    exported = type(module.eval_tokenizer).from_pretrained(tmp_path / "export")
    for a, b in zip(exported.state_dict().values(), module.eval_tokenizer.state_dict().values()):
        assert torch.equal(a, b)
    if name == "vidtok":  # the EMA weights are what validation, test and export use
        assert module.eval_tokenizer is module.ema.module

    metrics = trainer.test(module, clip_loader(frames), verbose=False)[0]
    assert set(metrics) == {f"test/{k}" for k in val_names | test_only}
