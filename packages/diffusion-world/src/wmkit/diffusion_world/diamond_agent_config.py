"""The :class:`~wmkit.diffusion_world.diamond.DiamondWorldModel` arguments of a released
DIAMOND agent (eloialonso/diamond), read off its state dict's tensor shapes and, where a
state dict does not hold a setting (offset noise, sampler), its agent YAML or the released
defaults of the branch the keys reveal (CS:GO's has ``noise_cond_emb``). Used by
:mod:`wmkit.diffusion_world.convert_diamond`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from wmkit.core import ActionSpec
from wmkit.diffusion_world.diamond.reward_end import RewardEndConfig
from wmkit.diffusion_world.diamond.upsampling import FAST_UPSAMPLING

__all__ = [
    "ATARI_SAMPLER",
    "CSGO_PRESETS",
    "REWARD_END_CLASS",
    "diamond_network_config",
    "diamond_world_config",
    "read_agent_yaml",
    "reward_end_component",
    "split_agent_state",
]

#: the reward/end model class the converter attaches to the world model
REWARD_END_CLASS = "wmkit.diffusion_world.diamond.reward_end.DiamondRewardEnd"
#: the released Atari next-frame sampler
ATARI_SAMPLER = {
    "num_steps_denoising": 3, "sigma_min": 2e-3, "sigma_max": 5.0, "rho": 7.0, "order": 1,
    "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": None, "s_noise": 1.0,
}  # fmt: skip
#: the released CS:GO play presets: next-frame and upsampling samplers
CSGO_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        "next_obs": {**ATARI_SAMPLER, "num_steps_denoising": 1, "s_cond": 0.005},
        "upsampling": dict(FAST_UPSAMPLING),
    },
    "higher_quality": {
        "next_obs": {**ATARI_SAMPLER, "num_steps_denoising": 3, "s_cond": 0.005},
        "upsampling": {**FAST_UPSAMPLING, "num_steps_denoising": 10, "order": 1},
    },
}


def split_agent_state(state: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """The agent's tensors grouped by their first dotted component (prefix stripped)."""
    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        parts.setdefault(part, {})[rest] = value
    return parts


def diamond_network_config(part: Mapping[str, Tensor], source: str = "denoiser") -> dict[str, Any]:
    """:class:`~wmkit.diffusion_world.diamond.DiamondNetwork` arguments read off the shapes
    of a denoiser's (or upsampler's) tensors, ``inner_model.*`` (the part's prefix
    stripped)."""

    def shape(key: str) -> tuple[int, ...]:
        if f"inner_model.{key}" not in part:
            raise ValueError(f"{source}: missing tensor {source}.inner_model.{key}")
        return tuple(part[f"inner_model.{key}"].shape)

    cond = 2 * shape("noise_emb.weight")[1]
    img_channels = shape("conv_out.weight")[0]
    in_frames = shape("conv_in.weight")[1] // img_channels
    upsampler = "inner_model.act_emb.0.weight" not in part
    n = in_frames - 2 if upsampler else in_frames - 1
    channels, depths, attn = [], [], []
    while f"inner_model.unet.d_blocks.{len(channels)}.resblocks.0.conv1.weight" in part:
        i = len(channels)
        block = f"inner_model.unet.d_blocks.{i}.resblocks"
        channels.append(shape(f"unet.d_blocks.{i}.resblocks.0.conv1.weight")[0])
        depths.append(sum(1 for j in range(64) if f"{block}.{j}.conv1.weight" in part))
        attn.append(int(f"{block}.0.attn.qkv_proj.weight" in part))
    if not channels or n < 1:
        raise ValueError(f"{source}: no UNet levels or conditioning frames found in its tensors")
    config: dict[str, Any] = {
        "img_channels": img_channels, "num_steps_conditioning": n, "cond_channels": cond,
        "depths": depths, "channels": channels, "attn_depths": attn,
        "noise_cond_embedding": "inner_model.noise_cond_emb.weight" in part,
        "upsampler": upsampler,
    }  # fmt: skip
    if not upsampler:
        num_actions, per_step = shape("act_emb.0.weight")
        if per_step * n != cond:
            raise ValueError(
                f"{source}: act_emb width {per_step} x {n} conditioning steps != cond {cond}"
            )
        config["num_actions"] = num_actions
    return config


def read_agent_yaml(path: str | Path) -> dict[str, Any]:
    """A DIAMOND agent YAML (``--config``) as a mapping; errors name the file."""
    import yaml  # PyYAML comes with lightning; only --config needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DIAMOND agent config not found: {path}")
    try:
        parsed = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"cannot parse {path} as YAML: {e}") from e
    if not isinstance(parsed, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return parsed


def _sampler_args(raw: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("num_steps_denoising", "sigma_min", "sigma_max", "rho", "order", "s_churn",
            "s_tmin", "s_tmax", "s_noise", "s_cond")  # fmt: skip
    args = {k: raw[k] for k in keys if k in raw}
    if args.get("s_tmax") is not None and float(args["s_tmax"]) == float("inf"):
        args["s_tmax"] = None
    return args


def _samplers(config: Mapping[str, Any], csgo: bool, preset: str) -> tuple[dict, dict | None]:
    """(next-frame sampler, upsampling sampler) from a config's world-model-env section, or
    the released defaults."""
    if csgo:
        if preset not in CSGO_PRESETS:
            raise ValueError(f"preset must be one of {tuple(CSGO_PRESETS)}; got {preset!r}")
        found = (config.get("world_model_env_presets") or {}).get(preset)
        if found:
            return _sampler_args(found["next_obs"]), _sampler_args(found["upsampling"])
        return dict(CSGO_PRESETS[preset]["next_obs"]), dict(CSGO_PRESETS[preset]["upsampling"])
    found = (config.get("world_model_env") or {}).get("diffusion_sampler")
    return (_sampler_args(found) if found else dict(ATARI_SAMPLER)), None


def diamond_world_config(
    state: Mapping[str, Tensor],
    *,
    agent_config: Mapping[str, Any] | None = None,
    preset: str = "fast",
    actions: str = "auto",
    reward_end: dict[str, Any] | bool | None = None,
    source: str = "agent",
) -> dict[str, Any]:
    """The :class:`~wmkit.diffusion_world.diamond.DiamondWorldModel` arguments for a DIAMOND
    agent state dict (only the tensors' shapes are read, so meta tensors work). Arguments as
    in :func:`convert_diamond_agent`."""
    config = dict(agent_config or {})
    agent = dict(config.get("agent") or config)
    parts = split_agent_state(state)
    if "denoiser" not in parts:
        raise ValueError(f"{source}: no denoiser.* tensors; is it a DIAMOND agent file?")
    net = diamond_network_config(parts["denoiser"], f"{source}: denoiser")
    csgo = bool(net["noise_cond_embedding"])
    num_actions = net.pop("num_actions")
    net.pop("upsampler")
    den_cfg = agent.get("denoiser") or {}
    if actions == "auto":
        actions = "multi_hot" if csgo else "discrete"
    if actions not in ("discrete", "multi_hot"):
        raise ValueError(f"actions must be auto, discrete or multi_hot; got {actions!r}")
    spec = (
        ActionSpec.discrete(num_actions)
        if actions == "discrete"
        else ActionSpec.multi_discrete([2] * num_actions)
    )
    next_sampler, up_sampler = _samplers(config, csgo, preset)
    kwargs: dict[str, Any] = {
        "action_spec": spec.to_dict(),
        "network": net,
        "objective": {
            "sigma_data": float(den_cfg.get("sigma_data", 0.5)),
            "sigma_offset_noise": float(den_cfg.get("sigma_offset_noise", 0.1 if csgo else 0.3)),
        },
        "sampler": next_sampler,
        "noise_previous_obs": bool(den_cfg.get("noise_previous_obs", csgo)),
    }
    if "upsampler" in parts:
        up_net = diamond_network_config(parts["upsampler"], f"{source}: upsampler")
        up_net.pop("upsampler")
        up_cfg = agent.get("upsampler") or {}
        kwargs["upsampler"] = {
            "network": up_net,
            "objective": {
                "sigma_data": float(up_cfg.get("sigma_data", 0.5)),
                "sigma_offset_noise": float(up_cfg.get("sigma_offset_noise", 0.1)),
            },
            "sampler": up_sampler or dict(FAST_UPSAMPLING),
            "factor": int(up_cfg.get("upsampling_factor") or 5),
        }
    if reward_end is None and "rew_end_model" in parts:
        reward_end = reward_end_component(parts["rew_end_model"], f"{source}: rew_end_model")
    if reward_end:
        if "rew_end_model" not in parts:
            raise ValueError(f"{source}: reward_end given but the file has no rew_end_model.*")
        kwargs["reward_end"] = reward_end
    return kwargs


def reward_end_component(part: Mapping[str, Tensor], source: str = "rew_end_model") -> dict:
    """The ``{"class_path", "init_args"}`` (JSON-serialisable) of the
    :class:`~wmkit.diffusion_world.diamond.DiamondRewardEnd` that a released
    ``rew_end_model.*`` state dict (prefix stripped) was built with, read off its shapes."""
    try:
        config = RewardEndConfig.from_state_dict(dict(part))
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e
    return {"class_path": REWARD_END_CLASS, "init_args": {"config": dataclasses.asdict(config)}}
