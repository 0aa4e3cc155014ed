"""``wmkit ar-world fit|test -c config.yaml``: train and test autoregressive world models."""

from wmkit.core import make_stage


def _module() -> type:
    from wmkit.ar_world.lit import ARWorldModelModule

    return ARWorldModelModule


command = make_stage(
    "train and test autoregressive (iVideoGPT/MineWorld-style) world models", model_class=_module
)
