"""``wmkit gate fit|test``: train and evaluate a world model's change gate from YAML.

::

    wmkit gate fit -c packages/core/configs/change_gate_tiny.yaml
    wmkit gate test -c packages/core/configs/change_gate_tiny.yaml --ckpt_path last

The model is a :class:`~wmkit.core.gated_world_model.GatedWorldModel` naming a saved world
model (``model.init_args.model.init_args.world``); the data any clip datamodule whose clips
hold ``context + horizon`` frames with actions. The trained gated model is exported with
``save_pretrained`` when ``fit`` ends.
"""

from __future__ import annotations

from wmkit.core.stage import make_stage

__all__ = ["command"]


def _model_class() -> type:
    from wmkit.core.change_gate_lit import ChangeGateModule

    return ChangeGateModule


command = make_stage(
    "train a learned per-patch 'keep the last frame' gate for a world model; fit|test",
    model_class=_model_class,
)
