"""The world models the diffusion-world benchmark builds from its flags."""

from __future__ import annotations

import argparse
import json
from typing import Any

from wmkit.core import ActionSpec
from wmkit.diffusion_world import DiffusionWorldModel


def flat_world_model(spec: ActionSpec, **flat: Any) -> DiffusionWorldModel:
    """A ``DiffusionWorldModel`` from the flat options this benchmark's flags name
    (``network="dit"``, ``objective="edm"``, ``num_sampling_steps``, ...), mapped onto its
    components by ``DiffusionWorldModel.upgrade_config``."""
    return DiffusionWorldModel(**DiffusionWorldModel.upgrade_config({"action_spec": spec, **flat}))


def model_kwargs(args: argparse.Namespace) -> dict:
    """The DiffusionWorldModel options under test (also used for the speed rows of the DiT)."""
    return {
        "size": args.size,
        "network_kwargs": json.loads(args.network_kwargs),
        "num_sampling_steps": args.sampling_steps,
        "context_window": 8,
        "objective": args.objective,
        "residual": args.residual,
        "sigma_data": args.sigma_data,
        "sigma_max": args.sigma_max,
        "prediction_type": args.prediction_type,
    }
