"""The 0.1.x flat ``DiffusionWorldModel`` arguments, mapped onto today's components.

wmkit-diffusion-world 0.1.x took about forty flat keyword arguments (``network="dit"``,
``size``, ``objective="edm"``, ``sigma_data``, ``num_sampling_steps``, ``reward_head``, ...).
:func:`upgrade_flat_config` rewrites such a config (a ``config.json`` written by 0.1.x
``save_pretrained``, or keyword arguments in that form) into the component form: a
``network`` spec, an ``objective``, ``sampling`` and ``heads``. Missing flat arguments take
their 0.1.x defaults, so the rebuilt model is the one 0.1.x built.
"""

from __future__ import annotations

from typing import Any

from wmkit.diffusion_world.networks import network_spec

__all__ = ["FLAT_DEFAULTS", "is_flat_config", "upgrade_flat_config", "upgrade_flat_state_dict"]

#: 0.1.x's flat arguments that no longer exist, with their 0.1.x defaults
FLAT_DEFAULTS: dict[str, Any] = {
    "size": "tiny",
    "network_kwargs": None,
    "pretrained_network": None,
    "temporal_conv": "extrapolative",
    "prediction_type": "v_prediction",
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "sampler": "ddim",
    "num_sampling_steps": 4,
    "guidance_scale": 1.0,
    "history_noise_level": 0,
    "context_window": 8,
    "sigma_data": 0.5,
    "sigma_min": 0.002,
    "sigma_max": 5.0,
    "p_mean": -0.4,
    "p_std": 1.2,
    "flow_shift": 1.0,
    "reward_head": False,
    "reward_hidden": 32,
    "done_head": False,
    "cuda_graphs": False,
    "history_cache": True,
    "carry_history": False,
    "refresh_keep": None,
}


def is_flat_config(config: dict[str, Any]) -> bool:
    """Whether ``config`` uses 0.1.x's flat arguments (a network or objective by name, or
    any argument that moved into a component)."""
    return (
        isinstance(config.get("network"), str)
        or isinstance(config.get("objective"), str)
        or any(key in config for key in FLAT_DEFAULTS)
    )


def upgrade_flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with 0.1.x's flat arguments replaced by today's components (other keys,
    such as ``action_spec`` or ``_wmkit_class``, kept)."""
    if not is_flat_config(config):
        return dict(config)
    flat = {**FLAT_DEFAULTS, "network": "dit", "objective": "ddpm", **config}
    network, objective = flat.pop("network"), flat.pop("objective")
    out = {k: v for k, v in flat.items() if k not in FLAT_DEFAULTS}
    channels, image_size = flat.get("channels", 3), flat.get("image_size", 16)
    residual = flat.get("residual", False)
    if flat["cuda_graphs"] and network != "dit":
        raise ValueError(f"cuda_graphs=True needs network='dit'; got network={network!r}")
    if residual and network != "dit":
        raise ValueError(f"residual=True needs network='dit'; got network={network!r}")
    if flat["sigma_data"] <= 0:  # 0.1.x checked it whatever the objective
        raise ValueError(f"sigma_data must be > 0; got {flat['sigma_data']}")
    out["network"] = network_spec(
        network, flat["size"], flat["network_kwargs"], flat["pretrained_network"],
        flat["temporal_conv"], channels, image_size, residual,
    )  # fmt: skip
    out["objective"] = _objective(objective, flat)
    out["sampling"] = {
        "num_steps": flat["num_sampling_steps"],
        "guidance_scale": flat["guidance_scale"],
        "history_noise_level": flat["history_noise_level"],
        "context_window": flat["context_window"],
        "history_cache": flat["history_cache"],
        "carry_history": flat["carry_history"],
        "refresh_keep": flat["refresh_keep"],
        "cuda_graphs": flat["cuda_graphs"],
    }
    heads = None
    if flat["reward_head"] or flat["done_head"]:
        heads = {"reward": flat["reward_head"], "done": flat["done_head"],
                 "hidden": flat["reward_hidden"]}  # fmt: skip
    out["heads"] = heads
    return out


def upgrade_flat_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """0.1.x weights under today's names: ``network.*`` → ``denoiser.network.*``,
    ``reward_head.*`` / ``done_head.*`` → ``heads.reward.*`` / ``heads.done.*``."""
    renames = {"network.": "denoiser.network.", "reward_head.": "heads.reward.",
               "done_head.": "heads.done."}  # fmt: skip
    out = {}
    for key, value in state.items():
        old = next((k for k in renames if key.startswith(k)), None)
        out[key if old is None else renames[old] + key[len(old) :]] = value
    return out


def _objective(name: str, flat: dict[str, Any]) -> dict[str, Any]:
    package = "wmkit.diffusion_world.objectives"
    if name == "ddpm":
        return {"class_path": f"{package}.DDPMObjective", "init_args": {
            "prediction_type": flat["prediction_type"],
            "num_train_timesteps": flat["num_train_timesteps"],
            "beta_schedule": flat["beta_schedule"], "sampler": flat["sampler"],
        }}  # fmt: skip
    if name == "edm":
        keys = ("sigma_data", "sigma_min", "sigma_max", "p_mean", "p_std")
        return {"class_path": f"{package}.EDMObjective",
                "init_args": {k: flat[k] for k in keys}}  # fmt: skip
    if name == "flow":
        return {"class_path": f"{package}.FlowObjective", "init_args": {
            "shift": flat["flow_shift"], "sigma_data": flat["sigma_data"],
            "num_train_timesteps": flat["num_train_timesteps"],
        }}  # fmt: skip
    raise ValueError(f"objective must be 'ddpm', 'edm' or 'flow'; got {name!r}")
