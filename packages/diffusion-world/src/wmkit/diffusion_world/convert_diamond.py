"""Convert a released DIAMOND agent (eloialonso/diamond: ``atari_100k/models/<Game>.pt``,
``csgo/model/csgo.pt``) into wmkit directories (``wmkit convert diamond AGENT.pt --out DIR``).

A DIAMOND agent file is one flat state dict whose first dotted component names the part:

- ``denoiser.*`` and (CS:GO) ``upsampler.*``: the world model, converted here into
  ``DIR/world``, a :class:`~wmkit.diffusion_world.diamond.DiamondWorldModel` directory
  (keys are kept as they are: the world model's submodules have the released names);
- ``rew_end_model.*`` (Atari): the reward/termination model, a
  :class:`~wmkit.diffusion_world.diamond.DiamondRewardEnd` whose sizes are read off the
  shapes (:meth:`~wmkit.diffusion_world.diamond.RewardEndConfig.from_state_dict`), loaded
  strictly into ``DIR/world`` too (its ``{"class_path", "init_args"}`` is saved in the world's
  ``config.json``, so the world's steps return reward and done);
- ``actor_critic.*`` (Atari): the policy, a ``wmkit.agents.DiamondActorCritic`` written to
  ``DIR/policy`` (``wmkit play --policy DIR/policy``). It belongs to wmkit-agents, which this
  package does not depend on: it is imported only here, and without it the policy is
  skipped with a message naming the package to install.

The file is read as tensors only (``torch.load(weights_only=True)``); architectures are
inferred from the tensor shapes (``num_actions`` from ``denoiser.inner_model.act_emb.0.weight``).
The few settings a state dict does not hold (offset noise, sampler) default to the released
values of the branch the keys reveal (CS:GO's has ``noise_cond_emb``), or come from an agent
YAML (``--config``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from wmkit.core import ActionSpec
from wmkit.core.convert import load_tensor_checkpoint
from wmkit.diffusion_world.diamond.reward_end import RewardEndConfig
from wmkit.diffusion_world.diamond.upsampling import FAST_UPSAMPLING
from wmkit.diffusion_world.diamond.world_model import DiamondWorldModel

__all__ = [
    "CSGO_PRESETS",
    "OTHER_PARTS",
    "REWARD_END_CLASS",
    "WORLD_PARTS",
    "ConvertedDiamond",
    "command",
    "convert_diamond",
    "convert_diamond_agent",
    "diamond_network_config",
    "diamond_world_config",
    "read_diamond_checkpoint",
    "reward_end_component",
    "split_agent_state",
]

#: prefixes converted into the world model
WORLD_PARTS = ("denoiser", "upsampler")
#: the other parts of a DIAMOND agent, and where they belong
OTHER_PARTS = {
    "rew_end_model": "the reward/termination model (not attached: reward_end=False)",
    "actor_critic": "the policy (install wmkit-agents to convert it)",
}
#: the reward/end model class the converter attaches to the world model
REWARD_END_CLASS = "wmkit.diffusion_world.diamond.reward_end.DiamondRewardEnd"
#: the agents package and module holding DIAMOND's actor-critic
AGENTS_PACKAGE = "wmkit-agents"
_ACTOR_CRITIC_MODULE = "wmkit.agents.diamond_actor_critic"
_ATARI_SAMPLER = {
    "num_steps_denoising": 3, "sigma_min": 2e-3, "sigma_max": 5.0, "rho": 7.0, "order": 1,
    "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": None, "s_noise": 1.0,
}  # fmt: skip
#: the released CS:GO play presets: next-frame and upsampling samplers
CSGO_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        "next_obs": {**_ATARI_SAMPLER, "num_steps_denoising": 1, "s_cond": 0.005},
        "upsampling": dict(FAST_UPSAMPLING),
    },
    "higher_quality": {
        "next_obs": {**_ATARI_SAMPLER, "num_steps_denoising": 3, "s_cond": 0.005},
        "upsampling": {**FAST_UPSAMPLING, "num_steps_denoising": 10, "order": 1},
    },
}


@dataclass
class ConvertedDiamond:
    """What :func:`convert_diamond_agent` produced: the ``world`` model, its ``config`` (the
    ``DiamondWorldModel`` arguments), the ``policy`` (a ``wmkit.agents.DiamondActorCritic``,
    or ``None``), the tensors not converted, by prefix (``skipped``), a one-line ``summary``
    and ``notes`` (lines for the user: what was skipped and why)."""

    world: DiamondWorldModel
    config: dict[str, Any]
    policy: nn.Module | None = None
    skipped: dict[str, list[str]] = field(default_factory=dict)
    summary: str = ""
    notes: list[str] = field(default_factory=list)


def read_diamond_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read a DIAMOND agent ``.pt`` (a flat state dict) without executing code.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file whose
    unpickling would run code or build objects other than tensors, or that holds no flat
    state dict.
    """
    path = Path(path)
    state = load_tensor_checkpoint(path, "DIAMOND agent checkpoint")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a DIAMOND state dict")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {bad[:5]}")
    return dict(state)


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


def _read_agent_yaml(path: str | Path) -> dict[str, Any]:
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
    return (_sampler_args(found) if found else dict(_ATARI_SAMPLER)), None


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


def _convert_policy(
    part: Mapping[str, Tensor], img_size: int, source: str
) -> tuple[nn.Module | None, str]:
    """The actor-critic built by wmkit-agents (imported here only), or ``None`` and why."""
    try:
        module = importlib.import_module(_ACTOR_CRITIC_MODULE)
    except ImportError:
        return None, (
            f"skipped the policy ({len(part)} actor_critic.* tensors): it needs the "
            f"{AGENTS_PACKAGE} package (pip install {AGENTS_PACKAGE}), then convert again"
        )
    try:
        policy = module.actor_critic_from_released(dict(part), img_size=img_size)
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"{source}: actor_critic.* is not a DIAMOND actor-critic: {e}") from e
    return policy.eval(), ""


def convert_diamond_agent(
    state: Mapping[str, Tensor],
    out: str | Path | None = None,
    *,
    agent_config: Mapping[str, Any] | None = None,
    preset: str = "fast",
    actions: str = "auto",
    reward_end: dict[str, Any] | bool | None = None,
    policy: bool = True,
    source: str = "agent",
) -> ConvertedDiamond:
    """Build the world model (with its reward/end model) and the policy of a DIAMOND agent
    state dict and, with ``out``, save them to ``out/world`` and ``out/policy``.

    Args:
        state: the agent's flat state dict (``denoiser.*``, ``upsampler.*``, ...).
        out: output directory (``None``: do not save).
        agent_config: the parsed agent YAML (the upstream schema; a top-level ``agent``
            mapping, as in the parity fixtures, is unwrapped); ``None``: released defaults.
        preset: CS:GO's sampler preset (``fast`` or ``higher_quality``).
        actions: ``discrete``, ``multi_hot`` or ``auto`` (multi-hot for the CS:GO branch).
        reward_end: ``None``: a :class:`~wmkit.diffusion_world.diamond.DiamondRewardEnd` read
            off ``rew_end_model.*`` when the file has it; ``False``: leave it out; a
            ``{"class_path", "init_args"}``: that module, loaded from ``rew_end_model.*``.
        policy: convert ``actor_critic.*`` (needs wmkit-agents; skipped with a note if it is
            not installed).
        source: the file's name, for messages.
    """
    kwargs = diamond_world_config(
        state, agent_config=agent_config, preset=preset, actions=actions,
        reward_end=reward_end, source=source,
    )  # fmt: skip
    converted_parts = [*WORLD_PARTS, *(["rew_end_model"] if "reward_end" in kwargs else [])]
    world = DiamondWorldModel(**kwargs)
    weights = {k: v for k, v in state.items() if k.partition(".")[0] in converted_parts}
    try:
        world.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source} does not match the inferred world model: {e}") from e
    world.eval()
    parts = split_agent_state(state)
    actor_critic, notes = None, []
    if policy and "actor_critic" in parts:
        img_size = 64  # Atari's frames; the reward/end model's LSTM width tells it exactly
        if "reward_end" in kwargs and kwargs["reward_end"].get("class_path") == REWARD_END_CLASS:
            img_size = int(kwargs["reward_end"]["init_args"]["config"]["img_size"])
        actor_critic, note = _convert_policy(parts["actor_critic"], img_size, source)
        if actor_critic is not None:
            converted_parts.append("actor_critic")
        else:
            notes.append(note)
    if out is not None:
        world.save_pretrained(Path(out) / "world")
        if actor_critic is not None:
            actor_critic.save_pretrained(Path(out) / "policy")  # type: ignore[operator]
    skipped = {p: sorted(parts[p]) for p in parts if p not in converted_parts}
    names = "; ".join(
        f"{len(keys)} {p}.*, {OTHER_PARTS.get(p, 'unknown part, ignored')}"
        for p, keys in sorted(skipped.items())
    )
    net = kwargs["network"]
    game = "CS:GO" if net["noise_cond_embedding"] else "Atari"
    num_actions = world.denoiser.inner_model.num_actions
    extras = ", upsampler" if "upsampler" in kwargs else ""
    extras += ", reward/end model" if "reward_end" in kwargs else ""
    n_policy = len(parts["actor_critic"]) if actor_critic is not None else 0
    summary = (
        f"diamond world ({game}, {num_actions} actions, n={net['num_steps_conditioning']}, "
        f"channels {net['channels']}{extras}): converted {len(weights)} tensors"
        + (f"; policy: converted {n_policy} actor_critic.* tensors" if n_policy else "")
        + f"; not converted: {names or 'nothing'}"
    )
    return ConvertedDiamond(world, kwargs, actor_critic, skipped, summary, notes)


def convert_diamond(
    checkpoint: str | Path,
    out: str | Path | None = None,
    config: str | Path | None = None,
    preset: str = "fast",
    actions: str = "auto",
) -> ConvertedDiamond:
    """:func:`convert_diamond_agent` on a released ``.pt`` (read as tensors only) and an
    optional agent YAML."""
    parsed = None if config is None else _read_agent_yaml(config)
    state = read_diamond_checkpoint(checkpoint)
    return convert_diamond_agent(
        state, out, agent_config=parsed, preset=preset, actions=actions, source=str(checkpoint)
    )


def command(argv: list[str]) -> int:
    """convert a released DIAMOND agent (.pt: Atari 100k or CS:GO) into DIR/world"""
    parser = argparse.ArgumentParser(
        prog="wmkit convert diamond",
        description="Convert a released eloialonso/diamond agent (.pt, read as tensors only) "
        "into DIR/world, a DiamondWorldModel (denoiser, CS:GO upsampler, Atari reward/end "
        "model), and DIR/policy, the Atari actor-critic (needs wmkit-agents).",
    )
    parser.add_argument("checkpoint", help="the agent .pt (e.g. atari_100k/models/Breakout.pt)")
    parser.add_argument("--out", required=True, help="output directory (world model in DIR/world)")
    parser.add_argument("--config", help="the agent YAML (default: the released settings)")
    parser.add_argument("--preset", default="fast", choices=sorted(CSGO_PRESETS),
                        help="CS:GO sampler preset")  # fmt: skip
    parser.add_argument("--actions", default="auto", choices=["auto", "discrete", "multi_hot"])
    args = parser.parse_args(argv)
    converted = convert_diamond(args.checkpoint, args.out, args.config, args.preset, args.actions)
    print(converted.summary)
    for note in converted.notes:
        print(note)
    print(f"wrote {Path(args.out) / 'world'} (load with wmkit.core.load_pretrained)")
    if converted.policy is not None:
        print(
            f"wrote {Path(args.out) / 'policy'} (wmkit play --policy {Path(args.out) / 'policy'})"
        )
    return 0
