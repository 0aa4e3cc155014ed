"""The quickstart's change-gate stage: a learned per-block "keep the last frame" gate on the
trained world model (:class:`wmkit.core.GatedWorldModel`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wmkit.apps.quickstart.plan import QuickstartPlan

__all__ = ["gate_config"]


def gate_config(plan: QuickstartPlan, world_dir: Path) -> dict[str, Any]:
    """The change-gate stage (``wmkit gate fit``): a per-4×4-block gate on the frozen world
    model in ``world_dir``, trained on its rollouts from ``plan.context`` real frames over
    ``plan.horizon`` frames of the training clips, ``plan.gate_steps`` steps
    (:class:`~wmkit.core.change_gate_lit.ChangeGateModule`; ``block_mse_weight`` 0.5 was the
    best of 0, 0.25, 0.5 and 1 on Crafter, ``docs/benchmarks/diffusion-world.md``)."""
    trainer = plan.trainer_config("gate", plan.gate_steps)
    trainer["limit_val_batches"] = 0  # the evaluation step scores the gated model
    return {
        "seed_everything": plan.seed,
        "trainer": trainer,
        "model": {
            "class_path": "wmkit.core.change_gate_lit.ChangeGateModule",
            "init_args": {
                "context": plan.context,
                "horizon": plan.horizon,
                "lr": 2e-3,
                "mse_floor": 1e-6,
                "block_mse_weight": 0.5,
                "model": {
                    "class_path": "wmkit.core.gated_world_model.GatedWorldModel",
                    "init_args": {"world": str(world_dir), "patch": 4},
                },
            },
        },
        "data": plan.data_config(with_steps=True, clip_length=plan.context + plan.horizon),
    }
