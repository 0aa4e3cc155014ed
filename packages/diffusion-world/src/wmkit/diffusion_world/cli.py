"""``wmkit diffusion-world fit|test``: LightningCLI over :class:`DiffusionForcingModule`."""

from wmkit.core import make_stage

__all__ = ["command"]


def _model_class() -> type:
    from wmkit.diffusion_world.lit import DiffusionForcingModule

    return DiffusionForcingModule


command = make_stage(
    "train and test causal video diffusion world models (Diffusion Forcing, Vid2World)",
    model_class=_model_class,
)
