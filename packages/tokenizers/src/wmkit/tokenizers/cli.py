"""``wmkit tokenizer fit|test|validate|predict``: LightningCLI over the tokenizer stage."""

from __future__ import annotations

from wmkit.core.stage import make_stage

__all__ = ["command"]


def _model_class() -> type:
    # Any LightningModule: the configs pick ``VidTokModule`` or ``CompressiveModule``.
    import lightning as L

    return L.LightningModule


command = make_stage(
    "train and test video tokenizers (VidTok-style causal 3D, iVideoGPT-style compressive)",
    model_class=_model_class,
)
