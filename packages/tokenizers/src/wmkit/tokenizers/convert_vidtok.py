"""Convert a released causal VidTok checkpoint (microsoft/VidTok) into a wmkit
:class:`~wmkit.tokenizers.vidtok.VidTokTokenizer` directory (``wmkit convert vidtok``).

VidTok (Tang et al. 2024, arXiv:2412.13061) releases Lightning ``.ckpt`` files and a YAML
config per model; the config names the generation (``model_3dcausal`` for v1.0,
``model_3dcausal_v1_1`` for v1.1) and the architecture. This module

- reads the ``.ckpt`` as tensors only (``torch.load(weights_only=True)``): a file whose
  unpickling would run code is refused;
- maps the config's model section to ``VidTokTokenizer`` arguments (:func:`vidtok_config`,
  in :mod:`~wmkit.tokenizers.convert_vidtok_config`);
- renames VidTok's keys to wmkit's with the table :data:`KEY_RULES`, requiring every
  ``encoder.*`` / ``decoder.*`` key and ignoring (and naming) the training-only entries
  (``loss.*``, ``model_ema.*``, optimizer and trainer state).

Only the causal models are supported (the non-causal ones are a different network).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from wmkit.core.convert import load_tensor_checkpoint
from wmkit.tokenizers.convert_vidtok_config import vidtok_config
from wmkit.tokenizers.vidtok import VidTokTokenizer

__all__ = [
    "KEY_RULES",
    "ConvertedVidTok",
    "command",
    "convert_vidtok",
    "map_vidtok_state_dict",
    "read_vidtok_checkpoint",
    "vidtok_config",
]

#: VidTok key pattern → wmkit key template. ``{lv}`` is resolution level ``lvl`` in wmkit's
#: list (``encoder.levels.<lvl>``; ``decoder.levels.<n-1-lvl>``, since the decoder lists
#: levels in the order it runs, deepest first, while VidTok's ``decoder.up.0`` is full
#: resolution), ``{S}`` / ``{T}`` the position of spatial / temporal resnet block ``blk``
#: (wmkit interleaves them in one list), ``{M}`` the position of ``mid.block_<i>``. A
#: template ending in ``#k`` is slice ``k`` of a tensor stacked on dim 0 (VidTok's separate
#: attention q, k, v → wmkit's ``qkv``). Tensors are reshaped where the two layouts differ
#: only by singleton dims (VidTok's 1D temporal convs ``[C, C, 3]`` and 1×1×1 attention convs).
_AE = r"(?P<part>encoder|decoder)"
_W = r"(?P<p>weight|bias)"
_BLOCK = r"(?:encoder\.down|decoder\.up)\.(?P<lvl>\d+)\.block\.(?P<blk>\d+)"
_TBLOCK = r"(?:encoder\.down|decoder\.up)_temporal\.(?P<lvl>\d+)\.block\.(?P<blk>\d+)"
_TDOWN = r"encoder\.down_temporal\.(?P<lvl>\d+)\.downsample"
_TUP = r"decoder\.up_temporal\.(?P<lvl>\d+)\.upsample"
_MID = _AE + r"\.mid\.block_(?P<i>[12])"
_ATTN = _AE + r"\.mid\.attn_1"


def _resnet(src: str, dst: str, conv: str, skip: str | None) -> list[tuple[str, str]]:
    """Rules of one VidTok resnet block ``src`` → wmkit's ``dst``: its two norms, its two
    convs (``conv`` between the conv's name and the parameter: ``.`` for a plain conv,
    ``.conv.`` for a wrapped one) and, when it has one, its ``nin_shortcut`` (``skip``)."""
    rules = [
        (src + r"\.(?P<m>norm[12])\.norm\." + _W, dst + ".{m}.norm.{p}"),
        (src + r"\.(?P<m>conv[12])" + conv + _W, dst + ".{m}.conv.{p}"),
    ]
    if skip is not None:
        rules.append((src + r"\.nin_shortcut" + skip + _W, dst + ".skip.conv.{p}"))
    return rules


def _resample(src: str, dst: str) -> list[tuple[str, str]]:
    """Rules of a VidTok temporal resampler: its blend logit and its conv."""
    return [
        (src + r"\.mix_factor", dst + ".blend.logit"),
        (src + r"\.conv\.conv\." + _W, dst + ".conv.conv.{p}"),
    ]


KEY_RULES: tuple[tuple[str, str], ...] = (
    (_AE + r"\.conv_(?P<io>in|out)\.conv\." + _W, "{part}.conv_{io}.conv.{p}"),
    (_AE + r"\.norm_out\.norm\." + _W, "{part}.norm_out.norm.{p}"),
    # per-frame 2D resnet blocks, then 1D causal temporal resnet blocks
    *_resnet(_BLOCK, "{lv}.blocks.{S}", r"\.", skip=r"\."),
    *_resnet(_TBLOCK, "{lv}.blocks.{T}", r"\.conv\.", skip=None),
    # spatial and temporal resampling
    (r"encoder\.down\.(?P<lvl>\d+)\.downsample\.conv\." + _W, "{lv}.down.conv.conv.{p}"),
    (r"decoder\.up\.(?P<lvl>\d+)\.upsample\.conv\." + _W, "{lv}.up.conv.conv.{p}"),
    *_resample(_TDOWN, "{lv}.time_down"),
    *_resample(_TUP, "{lv}.time_up"),
    # bottleneck: 3D resnet, per-frame attention (VidTok's q, k, v → wmkit's qkv), 3D resnet
    *_resnet(_MID, "{part}.mid.{M}", r"\.conv\.", skip=r"\.conv\."),
    (_ATTN + r"\.norm\.norm\." + _W, "{part}.mid.1.norm.norm.{p}"),
    (_ATTN + r"\.q\.conv\." + _W, "{part}.mid.1.qkv.{p}#0"),
    (_ATTN + r"\.k\.conv\." + _W, "{part}.mid.1.qkv.{p}#1"),
    (_ATTN + r"\.v\.conv\." + _W, "{part}.mid.1.qkv.{p}#2"),
    (_ATTN + r"\.proj_out\.conv\." + _W, "{part}.mid.1.out.{p}"),
)

_COMPILED = tuple((re.compile(pattern), template) for pattern, template in KEY_RULES)

#: Checkpoint entries that are not the autoencoder: LPIPS + discriminator (``loss.``) and
#: EMA weights (``model_ema.``), which VidTok's own loading ignores too.
IGNORED_PREFIXES = ("loss.", "model_ema.")


@dataclass
class ConvertedVidTok:
    """What :func:`convert_vidtok` produced: the ``tokenizer``, its ``config`` (the
    ``VidTokTokenizer`` arguments), the ``generation`` (``"1.0"`` or ``"1.1"``) and the
    one-line ``summary`` of what was converted and ignored."""

    tokenizer: VidTokTokenizer
    config: dict[str, Any]
    generation: str
    summary: str


def read_vidtok_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], list[str]]:
    """Read a VidTok ``.ckpt`` without executing code.

    Returns the model state dict (the Lightning file's ``state_dict``, or the file itself
    when it is a bare state dict) and the names of the other top-level entries (trainer
    state). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file
    that is not a tensors-only pickle (one whose unpickling would run code) or holds no
    state dict.
    """
    path = Path(path)
    ckpt = load_tensor_checkpoint(path, "VidTok checkpoint")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    if isinstance(ckpt.get("state_dict"), dict):
        state = ckpt["state_dict"]
        others = sorted(k for k in ckpt if k != "state_dict")
    else:
        state, others = ckpt, []
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict entries that are not tensors: {bad[:5]}")
    return dict(state), [str(k) for k in others]


def _wmkit_key(key: str, n_levels: int) -> str | None:
    for pattern, template in _COMPILED:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        g = m.groupdict()
        fields = dict(g)
        if "lvl" in g:
            encoder = key.startswith("encoder.")
            lvl = int(g["lvl"]) if encoder else n_levels - 1 - int(g["lvl"])
            fields["lv"] = f"{'encoder' if encoder else 'decoder'}.levels.{lvl}"
        if "blk" in g:
            fields["S"], fields["T"] = str(2 * int(g["blk"])), str(2 * int(g["blk"]) + 1)
        if "i" in g:
            fields["M"] = "0" if g["i"] == "1" else "2"
        return template.format(**fields)
    return None


def map_vidtok_state_dict(
    state: dict[str, Tensor], target: dict[str, Tensor], n_levels: int, source: str = "checkpoint"
) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
    """Rename (and reshape) VidTok's ``encoder.*`` / ``decoder.*`` tensors to the keys and
    shapes of ``target`` (a ``VidTokTokenizer`` state dict; meta tensors are fine).

    Returns the wmkit state dict and the ignored keys grouped by prefix. Raises
    ``ValueError`` listing unknown autoencoder keys, wmkit keys the checkpoint does not
    fill, and shape mismatches.
    """
    out: dict[str, Tensor] = {}
    stacked: dict[str, dict[int, Tensor]] = {}
    ignored: dict[str, list[str]] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if not key.startswith(("encoder.", "decoder.")):
            prefix = next((p for p in IGNORED_PREFIXES if key.startswith(p)), "other")
            ignored.setdefault(prefix.rstrip("."), []).append(key)
            continue
        new = _wmkit_key(key, n_levels)
        if new is None:
            unknown.append(key)
        elif "#" in new:
            name, slot = new.split("#")
            stacked.setdefault(name, {})[int(slot)] = value
        else:
            out[new] = value
    for name, parts in stacked.items():
        if name in target:
            rows = target[name].shape[0] // 3
            out[name] = torch.cat(
                [parts[i].reshape(rows, -1).squeeze(-1) for i in sorted(parts)], dim=0
            )
    problems: list[str] = []
    if unknown:
        problems.append(f"unknown encoder/decoder keys: {unknown[:8]}")
    missing = sorted(set(target) - set(out))
    if missing:
        problems.append(
            f"{len(missing)} wmkit tensors not filled (missing VidTok keys): {missing[:8]}"
        )
    extra = sorted(set(out) - set(target))
    if extra:
        problems.append(f"keys with no place in the configured model: {extra[:8]}")
    for key in sorted(set(out) & set(target)):
        want = target[key].shape
        if out[key].numel() != want.numel() or [d for d in out[key].shape if d != 1] != [
            d for d in want if d != 1
        ]:
            problems.append(f"{key}: checkpoint shape {tuple(out[key].shape)}, model {tuple(want)}")
        else:
            out[key] = out[key].reshape(want)
    if problems:
        raise ValueError(f"{source} does not match its config: " + "; ".join(problems))
    return out, ignored


def convert_vidtok(
    checkpoint: str | Path, config: str | Path, out: str | Path | None = None
) -> ConvertedVidTok:
    """Load a released causal VidTok checkpoint into a ``VidTokTokenizer`` (eval mode) and,
    when ``out`` is given, ``save_pretrained`` it there.

    Args:
        checkpoint: the ``.ckpt`` (Lightning) file; read as tensors only.
        config: the released YAML config (its ``model`` section names the variant).
        out: directory for ``save_pretrained`` (``None``: do not save).
    """
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"VidTok config not found: {config}")
    try:
        parsed = yaml.safe_load(config.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"cannot parse {config} as YAML: {e}") from e
    if not isinstance(parsed, dict):
        raise ValueError(f"{config}: expected a YAML mapping")
    kwargs, generation = vidtok_config(parsed, source=str(config))
    state, others = read_vidtok_checkpoint(checkpoint)
    with torch.device("meta"):
        target = VidTokTokenizer(**kwargs).state_dict()
    mapped, ignored = map_vidtok_state_dict(
        state, target, len(kwargs["multipliers"]), source=str(checkpoint)
    )
    tokenizer = VidTokTokenizer(**kwargs)
    tokenizer.load_state_dict(mapped, strict=True)
    tokenizer.eval()
    if out is not None:
        tokenizer.save_pretrained(out)
    n_in = sum(1 for k in state if k.startswith(("encoder.", "decoder.")))
    reg = (
        f"KL-{kwargs['latent_channels']}"
        if kwargs["regularizer"] == "kl"
        else f"FSQ-{tokenizer.vocab_size}"
    )
    s, t = kwargs["spatial_compression"], kwargs["temporal_compression"]
    counts = Counter({k: len(v) for k, v in ignored.items()})
    skipped = ", ".join(f"{n} {k}.*" for k, n in sorted(counts.items())) or "no other tensors"
    trainer = f"; trainer entries {', '.join(others)}" if others else ""
    summary = (
        f"vidtok v{generation} {reg} {t}x{s}x{s}: converted {n_in} encoder/decoder tensors; "
        f"ignored {skipped}{trainer}"
    )
    return ConvertedVidTok(tokenizer, kwargs, generation, summary)


def command(argv: list[str]) -> int:
    """convert a released causal VidTok checkpoint (.ckpt + its YAML config)"""
    parser = argparse.ArgumentParser(
        prog="wmkit convert vidtok",
        description="Convert a released causal microsoft/VidTok checkpoint into a wmkit "
        "from_pretrained directory (read as tensors only; loss/EMA/trainer entries ignored).",
    )
    parser.add_argument("checkpoint", help="the released .ckpt file")
    parser.add_argument("--config", required=True, help="the released YAML config of the model")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    converted = convert_vidtok(args.checkpoint, args.config, args.out)
    print(converted.summary)
    print(f"wrote {args.out} (load with wmkit.core.load_pretrained)")
    return 0
