"""``wmkit tokenizer fit|test|validate|predict``: LightningCLI over the tokenizer stage."""

from __future__ import annotations

from wmkit.core.stage import make_stage

__all__ = ["command"]


def _model_class() -> type:
    from wmkit.tokenizers.lit import VidTokModule

    return VidTokModule


command = make_stage(
    "train and test video tokenizers (VidTok-style causal 3D, KL or FSQ)",
    model_class=_model_class,
)
