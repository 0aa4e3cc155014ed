"""Convert a released iVideoGPT model folder (thuml/iVideoGPT; Wu et al. 2024) into wmkit
``from_pretrained`` directories (``wmkit convert ivideogpt DIR --out OUT``).

A released folder (e.g. ``thuml/ivideogpt-oxe-64-act-free`` from the Hugging Face hub) holds
``tokenizer/{config.json, diffusion_pytorch_model.safetensors}`` (the compressive VQ
tokenizer) and ``transformer/{config.json, model.safetensors}`` (Llama). This module

- refuses any pickle file in the folder (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``,
  ``*.pkl``, ``*.pickle``): wmkit reads safetensors only, and never unpickles;
- tells action-conditioned from action-free weights by their keys (``action_linear.*`` of
  ``HeadModelWithAction``; its ``[hidden, A]`` weight gives the action size). Goal-conditioned
  weights look like action-free ones, so that kind comes from ``--goal-conditioned`` or a
  folder name containing ``goal-cond``;
- reads the layout from ``tokenizer/config.json`` (codebook sizes, ``context_length``, grid
  sizes from ``resolution``, the number of blocks and ``patch_size``) and checks it against
  the transformer's vocabulary;
- converts the tokenizer with ``wmkit.tokenizers.convert_ivideogpt.load_released_tokenizer``
  (wmkit-tokenizers, imported only here: the CLI is where packages are composed) and
  writes ``OUT/world`` (an :class:`IVideoGPTWorldModel`, its tokenizer inside it) and
  ``OUT/tokenizer`` (the same tokenizer directory, hard-linked where the file system allows).
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import released_action_dim
from wmkit.ar_world.ivideogpt_world_model import IVideoGPTWorldModel
from wmkit.ar_world.llama import LlamaConfig
from wmkit.core import ActionSpec
from wmkit.core.convert import converter_parser, load_released_tokenizer
from wmkit.core.pretrained import read_json_object

__all__ = [
    "PICKLE_SUFFIXES",
    "ConvertedIVideoGPT",
    "command",
    "convert_ivideogpt",
    "layout_from_tokenizer_config",
    "read_transformer",
    "refuse_pickles",
    "world_state_dict",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass
class ConvertedIVideoGPT:
    """What :func:`convert_ivideogpt` produced: the world model (eval mode, its tokenizer
    inside), its ``kind`` (``"action-conditioned"``, ``"action-free"`` or
    ``"goal-conditioned"``) and a one-line ``summary``."""

    world: IVideoGPTWorldModel
    kind: str
    summary: str


def refuse_pickles(folder: Path) -> None:
    """Raise ``ValueError`` naming the first pickle-format file under ``folder``."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if found:
        raise ValueError(
            f"refusing to read {found[0]}: it is a pickle file, and unpickling can run code. "
            "wmkit reads iVideoGPT weights from safetensors only (the released folders hold "
            "transformer/model.safetensors and tokenizer/diffusion_pytorch_model.safetensors); "
            f"remove the pickle file(s) ({', '.join(p.name for p in found[:4])}) or convert "
            "them to safetensors yourself in a trusted environment"
        )


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (expected a released iVideoGPT folder)")
    return read_json_object(path)


def read_transformer(folder: Path) -> tuple[LlamaConfig, dict[str, Tensor]]:
    """``transformer/config.json`` as a :class:`LlamaConfig` and the weights of
    ``transformer/model.safetensors``."""
    config = LlamaConfig.from_hf(_json(folder / "config.json"))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing (wmkit reads safetensors only)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights} is not a readable safetensors file: {e}") from e
    return config, state


def layout_from_tokenizer_config(config: dict[str, Any], source: str = "config") -> IVideoGPTLayout:
    """The token layout a released ``tokenizer/config.json`` implies: ``context_length``
    context frames of ``(resolution / 2^(blocks - 1))²`` context ids and
    ``(that / patch_size)²`` dynamics ids."""
    try:
        resolution = int(config["resolution"])
        blocks = len(config["block_out_channels"])
        patch = int(config.get("patch_size", 4))
        n_vq, n_dyn = int(config["num_vq_embeddings"]), int(config["num_dyn_embeddings"])
        ctx = int(config["context_length"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{source}: not an iVideoGPT CompressiveVQModel config ({e!r})") from e
    side = resolution // 2 ** (blocks - 1)
    if side < 1 or side % patch:
        raise ValueError(
            f"{source}: a {side}x{side} context grid does not split into patch_size {patch}"
        )
    return IVideoGPTLayout(ctx, (side, side), (side // patch, side // patch), n_vq, n_dyn)


def world_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A released transformer state dict under :class:`IVideoGPTWorldModel`'s keys
    (``transformer.llm.*``, ``transformer.action_linear.*``)."""
    acted = released_action_dim(state) is not None
    return {("transformer." if acted else "transformer.llm.") + k: v for k, v in state.items()}


def _released_tokenizer(folder: Path) -> Any:
    """The released tokenizer, read by wmkit-tokenizers' registered ``ivideogpt`` reader (the
    package that owns it; ar-world does not import it)."""
    return load_released_tokenizer("ivideogpt", folder)


def convert_ivideogpt(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    goal_conditioned: bool | None = None,
    max_frames: int = 16,
    action_bound: float = 1.0,
    tokenizer: Any = None,
) -> ConvertedIVideoGPT:
    """Load a released iVideoGPT folder into an :class:`IVideoGPTWorldModel` (eval mode)
    and, when ``out`` is given, write ``out/world`` and ``out/tokenizer``.

    Args:
        folder: the released folder with ``tokenizer/`` and ``transformer/``.
        out: output directory (``None``: do not save).
        goal_conditioned: the weights are the goal-conditioned model's (``None``: when the
            folder's name contains ``goal-cond``).
        max_frames: frames per sequence (the release's training segment length: 16 for
            BAIR and Open X-Embodiment, 12 for VP2 and RoboNet).
        action_bound: action-conditioned models take actions in ``[-bound, bound]``.
        tokenizer: an already converted tokenizer to use instead of converting
            ``tokenizer/`` (it must satisfy ``wmkit.core.Tokenizer`` and match the layout).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no released iVideoGPT folder at {folder}")
    refuse_pickles(folder)
    tok_config = _json(folder / "tokenizer" / "config.json")
    layout = layout_from_tokenizer_config(tok_config, str(folder / "tokenizer" / "config.json"))
    llama, state = read_transformer(folder / "transformer")
    if llama.vocab_size != layout.vocab_size:
        raise ValueError(
            f"{folder / 'transformer' / 'config.json'}: vocab_size {llama.vocab_size} is not "
            f"num_vq_embeddings + num_dyn_embeddings + 2 = {layout.vocab_size} of the tokenizer"
        )
    action_dim = released_action_dim(state)
    if goal_conditioned is None:
        goal_conditioned = "goal-cond" in folder.resolve().name
    if goal_conditioned and action_dim is not None:
        raise ValueError(f"{folder}: goal-conditioned, but the weights hold action_linear")
    spec = None
    if action_dim is not None:
        spec = ActionSpec.continuous(action_dim, -action_bound, action_bound)
    if tokenizer is None:
        tokenizer = _released_tokenizer(folder / "tokenizer")
    res = int(tok_config["resolution"])
    world = IVideoGPTWorldModel(
        tokenizer, llama, layout, action_spec=spec, goal_conditioned=goal_conditioned,
        frame_size=(res, res), max_frames=max_frames,
    )  # fmt: skip
    world.load_state_dict(world_state_dict(state), strict=True)
    world.eval()
    kind = (
        "action-conditioned"
        if action_dim is not None
        else "goal-conditioned"
        if goal_conditioned
        else "action-free"
    )
    if out is not None:
        out = Path(out)
        world.save_pretrained(out / "world")
        _link_tree(out / "world" / "tokenizer", out / "tokenizer")
    params = sum(p.numel() for p in world.transformer.parameters())
    acts = f", {action_dim}-d actions" if action_dim is not None else ""
    summary = (
        f"ivideogpt {kind} {res}x{res}{acts}: {len(state)} transformer tensors "
        f"({params / 1e6:.1f}M parameters), {layout.context_frames} context frames of "
        f"{layout.context_tokens} ids, {layout.future_tokens} ids per future frame"
    )
    return ConvertedIVideoGPT(world, kind, summary)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, hard-linking files where the file system allows."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def command(argv: list[str]) -> int:
    """convert a released iVideoGPT model folder (tokenizer/ + transformer/, safetensors)"""
    parser = converter_parser(
        "ivideogpt",
        "Convert a released thuml/iVideoGPT folder (tokenizer/ and transformer/, "
        "safetensors; pickle files are refused) into OUT/world (IVideoGPTWorldModel) and "
        "OUT/tokenizer.",
        "folder",
        "the released model folder",
        "output directory",
    )
    parser.add_argument(
        "--goal-conditioned", action=argparse.BooleanOptionalAction, default=None,
        help="the goal-conditioned release (default: when the folder name contains goal-cond)",
    )  # fmt: skip
    parser.add_argument(
        "--max-frames", type=int, default=16,
        help="frames per sequence: the training segment length (16 BAIR/OXE, 12 VP2/RoboNet)",
    )  # fmt: skip
    parser.add_argument(
        "--action-bound", type=float, default=1.0,
        help="action-conditioned models take actions in [-bound, bound] (default 1)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    converted = convert_ivideogpt(
        args.folder, args.out, goal_conditioned=args.goal_conditioned,
        max_frames=args.max_frames, action_bound=args.action_bound,
    )  # fmt: skip
    print(converted.summary)
    print(f"wrote {args.out}/world and {args.out}/tokenizer (load with wmkit.core.load_pretrained)")
    return 0
