"""``wmkit agents``: model-based RL in a world model from a YAML config.

    wmkit agents mbrl -c packages/agents/configs/mbpo_tiny.yaml --out runs/mbpo
    wmkit agents mbrl -c cfg.yaml --iterations 50 --mbpo.real_ratio 0.25
    wmkit agents mbrl -c cfg.yaml --print_config
    wmkit agents mbrl -c cfg.yaml --out runs/mbpo --ckpt_path last   # resume a killed run

The config's ``mbpo:`` section is :class:`~wmkit.agents.MBPO`'s ``__init__`` (the world
model's LightningModule by ``class_path``, the env by name); jsonargparse (LightningCLI's
parser) reads it, so every argument can be overridden on the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wmkit.core import Command

__all__ = ["build_parser", "command", "run_mbrl"]

_SUBCOMMANDS = {
    "mbrl": "MBPO: real collection, world-model fine-tuning, imagined rollouts, SAC/TD3"
}


def build_parser() -> Any:
    """The ``wmkit agents mbrl`` argument parser (``mbpo.*`` = ``MBPO.__init__``)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from wmkit.agents.mbpo import MBPO

    parser = ArgumentParser(prog="wmkit agents mbrl", description=_SUBCOMMANDS["mbrl"])
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="YAML config")
    parser.add_argument("--seed_everything", type=int, default=0, help="global torch/numpy seed")
    parser.add_argument("--iterations", type=int, default=10, help="MBPO iterations")
    parser.add_argument("--out", type=str | None, default=None, help="write result.json here")
    parser.add_argument(
        "--ckpt_path",
        type=str | None,
        default=None,
        help="resume from this checkpoint; 'last': OUT/checkpoints/last.pt if it exists",
    )
    parser.add_argument(
        "--ckpt_every", type=int, default=1, help="iterations between checkpoints (0: none)"
    )
    parser.add_class_arguments(MBPO, "mbpo")
    return parser


def run_mbrl(argv: list[str]) -> Any:
    """Parse ``argv``, build :class:`MBPO`, run it; returns the ``MBPOResult``."""
    import lightning as L

    from wmkit.agents.mbpo import MBPOResult
    from wmkit.agents.mbpo_checkpoint import load_checkpoint

    parser = build_parser()
    cfg = parser.parse_args(argv)
    L.seed_everything(cfg.seed_everything, verbose=False)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    mbpo = instantiate(cfg).mbpo
    out = Path(cfg.out) if cfg.out is not None else None
    checkpoint = out / "checkpoints" / "last.pt" if out is not None else None
    resume = cfg.ckpt_path
    if resume == "last":
        if checkpoint is None:
            raise ValueError("--ckpt_path last needs --out (the checkpoint is OUT/checkpoints)")
        resume = checkpoint if checkpoint.is_file() else None
    done = load_checkpoint(mbpo, resume) if resume is not None else MBPOResult()
    if len(done.real_steps) > cfg.iterations:
        raise ValueError(
            f"{resume} holds {len(done.real_steps)} iterations; --iterations is {cfg.iterations}"
        )
    result = mbpo.run(
        cfg.iterations - len(done.real_steps),
        checkpoint=checkpoint if cfg.ckpt_every > 0 else None,
        result=done,
        checkpoint_every=max(cfg.ckpt_every, 1),
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        (out / "config.yaml").write_text(parser.dump(cfg))
        save = getattr(mbpo.world_model, "save_pretrained", None)
        if callable(save):
            save(out / "world_model")
        mbpo.agent.save(out / "agent.zip")
    return result


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: wmkit agents <subcommand> [-c cfg.yaml] [options]", "", "subcommands:"]
        lines += [f"  {k:<8}{v}" for k, v in _SUBCOMMANDS.items()]
        print("\n".join(lines))
        return 0 if argv else 2
    if argv[0] not in _SUBCOMMANDS:
        known = ", ".join(_SUBCOMMANDS)
        raise SystemExit(f"wmkit agents: unknown subcommand {argv[0]!r}; known: {known}")
    run_mbrl(argv[1:])
    return 0


command = Command(help="train, plan and evaluate policies inside world models (MBPO)", run=_run)
