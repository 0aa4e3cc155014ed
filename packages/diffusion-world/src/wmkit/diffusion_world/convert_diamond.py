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

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from wmkit.core.convert import converter_parser, load_tensor_checkpoint
from wmkit.diffusion_world.diamond.world_model import DiamondWorldModel
from wmkit.diffusion_world.diamond_agent_config import (
    CSGO_PRESETS,
    REWARD_END_CLASS,
    diamond_network_config,
    diamond_world_config,
    read_agent_yaml,
    reward_end_component,
    split_agent_state,
)

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
#: the agents package and module holding DIAMOND's actor-critic
AGENTS_PACKAGE = "wmkit-agents"
_ACTOR_CRITIC_MODULE = "wmkit.agents.diamond_actor_critic"


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
    n_policy = len(parts["actor_critic"]) if actor_critic is not None else 0
    summary = _summary(world, kwargs, len(weights), n_policy, skipped)
    return ConvertedDiamond(world, kwargs, actor_critic, skipped, summary, notes)


def _summary(
    world: DiamondWorldModel,
    kwargs: dict[str, Any],
    n_world: int,
    n_policy: int,
    skipped: dict[str, list[str]],
) -> str:
    """One line: what the world is, how many tensors were converted, what was not."""
    names = "; ".join(
        f"{len(keys)} {p}.*, {OTHER_PARTS.get(p, 'unknown part, ignored')}"
        for p, keys in sorted(skipped.items())
    )
    net = kwargs["network"]
    game = "CS:GO" if net["noise_cond_embedding"] else "Atari"
    num_actions = world.denoiser.inner_model.num_actions
    extras = ", upsampler" if "upsampler" in kwargs else ""
    extras += ", reward/end model" if "reward_end" in kwargs else ""
    return (
        f"diamond world ({game}, {num_actions} actions, n={net['num_steps_conditioning']}, "
        f"channels {net['channels']}{extras}): converted {n_world} tensors"
        + (f"; policy: converted {n_policy} actor_critic.* tensors" if n_policy else "")
        + f"; not converted: {names or 'nothing'}"
    )


def convert_diamond(
    checkpoint: str | Path,
    out: str | Path | None = None,
    config: str | Path | None = None,
    preset: str = "fast",
    actions: str = "auto",
) -> ConvertedDiamond:
    """:func:`convert_diamond_agent` on a released ``.pt`` (read as tensors only) and an
    optional agent YAML."""
    parsed = None if config is None else read_agent_yaml(config)
    state = read_diamond_checkpoint(checkpoint)
    return convert_diamond_agent(
        state, out, agent_config=parsed, preset=preset, actions=actions, source=str(checkpoint)
    )


def command(argv: list[str]) -> int:
    """convert a released DIAMOND agent (.pt: Atari 100k or CS:GO) into DIR/world"""
    parser = converter_parser(
        "diamond",
        "Convert a released eloialonso/diamond agent (.pt, read as tensors only) "
        "into DIR/world, a DiamondWorldModel (denoiser, CS:GO upsampler, Atari reward/end "
        "model), and DIR/policy, the Atari actor-critic (needs wmkit-agents).",
        "checkpoint",
        "the agent .pt (e.g. atari_100k/models/Breakout.pt)",
        "output directory (world model in DIR/world)",
    )
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
