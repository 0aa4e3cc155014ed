"""Load a released iVideoGPT tokenizer (thuml/iVideoGPT, Wu et al. 2024) into
:class:`~wmkit.tokenizers.ivideogpt_vq.IVideoGPTTokenizer`.

A released model folder (``thuml/ivideogpt-*``) holds ``tokenizer/config.json`` (diffusers'
``CompressiveVQModel`` config) and ``tokenizer/diffusion_pytorch_model.safetensors``. This
module reads that ``tokenizer/`` folder:

- weights from safetensors only; a pickle file anywhere in the folder (``.bin``, ``.pt``,
  ``.ckpt``, ... or a file that starts like a pickle or a torch zip archive) is refused
  without being opened as one, since unpickling can run code;
- ``config.json`` fields map one to one onto ``IVideoGPTTokenizer`` arguments
  (:func:`released_tokenizer_config`); fields that change nothing at inference
  (``sample_size``, ``scaling_factor``, ``lookup_from_codebook``, ``force_upcast``) and
  diffusers' bookkeeping are named as ignored, a field missing from the file takes the
  original constructor's default and is named too, and a value the original code supports
  but this port does not (``norm_type: spatial``, other block types or activations) is
  refused;
- every key of the tokenizer is required in the file with its exact shape, and a key the
  tokenizer does not have is an error (the original loads with ``strict=True`` as well).

The ``wmkit convert ivideogpt`` command (in ``wmkit-ar-world``, which also converts the
transformer) calls :func:`load_released_tokenizer`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from wmkit.tokenizers.ivideogpt_vq import IVideoGPTTokenizer

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "ReleasedTokenizer",
    "load_released_tokenizer",
    "read_released_tokenizer",
    "released_tokenizer_config",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"

#: config.json field → IVideoGPTTokenizer argument, with the original constructor's default.
_FIELDS: dict[str, tuple[str, Any]] = {
    "block_out_channels": ("block_out_channels", [64]),
    "layers_per_block": ("layers_per_block", 1),
    "latent_channels": ("latent_channels", 3),
    "vq_embed_dim": ("vq_embed_dim", None),
    "num_vq_embeddings": ("num_vq_embeddings", 256),
    "num_dyn_embeddings": ("num_dyn_embeddings", 256),
    "norm_num_groups": ("norm_num_groups", 32),
    "context_length": ("context_length", 1),
    "resolution": ("resolution", 256),
    "max_att_resolution": ("max_att_resolution", 32),
    "patch_size": ("patch_size", 4),
    "mid_block_add_attention": ("mid_block_add_attention", True),
    "in_channels": ("in_channels", 3),
}
#: Fields that must hold exactly this value (the only one this port implements).
_FIXED: dict[str, Any] = {"act_fn": "silu", "norm_type": "group"}
#: Fields that change nothing at inference or are diffusers' bookkeeping.
_UNUSED = (
    "sample_size",
    "scaling_factor",
    "lookup_from_codebook",
    "force_upcast",
    "_class_name",
    "_diffusers_version",
    "_name_or_path",
)
_CLASS_NAMES = ("CompressiveVQModel", "VQModel")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")


@dataclass
class ReleasedTokenizer:
    """What :func:`read_released_tokenizer` produced.

    Attributes:
        tokenizer: the loaded tokenizer, in eval mode.
        config: its ``IVideoGPTTokenizer`` arguments.
        ignored: config fields read and ignored (they change nothing at inference).
        defaulted: arguments absent from config.json, set to the original default.
        summary: one line saying what was loaded and what was ignored.
    """

    tokenizer: IVideoGPTTokenizer
    config: dict[str, Any]
    ignored: list[str]
    defaulted: list[str]
    summary: str


def _is_pickle(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(4)
    # pickle protocol >= 2 opens with PROTO (0x80) and the version; torch.save writes a zip
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04"


def _refuse_pickles(folder: Path) -> None:
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and _is_pickle(p))
    if pickles:
        raise ValueError(
            f"refusing to read {folder}: it holds pickle file(s) {pickles}. Unpickling can run "
            f"arbitrary code, so wmkit reads only {WEIGHTS_FILE} (safetensors) and "
            f"{CONFIG_FILE}; remove the pickle files (or convert them to safetensors with a "
            "tool you trust) and try again"
        )


def released_tokenizer_config(
    config: dict[str, Any], source: str = CONFIG_FILE
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Map an iVideoGPT tokenizer ``config.json`` (parsed) to ``IVideoGPTTokenizer``
    arguments; returns ``(arguments, ignored fields, defaulted arguments)``.

    Raises ``ValueError`` naming the field for an unknown class, an unknown field or a value
    this port does not implement.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{source} must hold a JSON object; got {type(config).__name__}")
    name = config.get("_class_name", "CompressiveVQModel")
    if name not in _CLASS_NAMES:
        raise ValueError(f"{source}: _class_name {name!r} is not an iVideoGPT tokenizer")
    for key, value in _FIXED.items():
        if config.get(key, value) != value:
            raise ValueError(f"{source}: {key}={config[key]!r} is not supported (only {value!r})")
    known = set(_FIELDS) | set(_FIXED) | set(_UNUSED)
    known |= {"out_channels", "down_block_types", "up_block_types"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; is this an iVideoGPT tokenizer?")
    kwargs: dict[str, Any] = {}
    defaulted: list[str] = []
    for field, (arg, default) in _FIELDS.items():
        if field in config:
            kwargs[arg] = config[field]
        else:
            kwargs[arg] = default
            defaulted.append(arg)
    levels = len(kwargs["block_out_channels"])
    for field, block in (
        ("down_block_types", "DownEncoderBlock2D"),
        ("up_block_types", "UpDecoderBlock2D"),
    ):
        types = list(config.get(field, [block] * levels))
        if types != [block] * levels:
            raise ValueError(
                f"{source}: {field} must be {levels} x {block!r} (one per block_out_channels "
                f"entry); got {types}"
            )
    if config.get("out_channels", kwargs["in_channels"]) != kwargs["in_channels"]:
        raise ValueError(
            f"{source}: out_channels ({config['out_channels']}) must equal in_channels "
            f"({kwargs['in_channels']})"
        )
    ignored = sorted(k for k in config if k in _UNUSED)
    return kwargs, ignored, defaulted


def _read_weights(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"iVideoGPT tokenizer weights not found: {path}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as safetensors: {e}") from e


def _check_state(model: IVideoGPTTokenizer, state: dict[str, Tensor], path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match its config.json: missing {len(missing)} key(s) "
            f"{missing[:8]}, unexpected {len(unexpected)} key(s) {unexpected[:8]}"
        )
    wrong = [
        f"{k}: {tuple(state[k].shape)} (expected {shape})"
        for k, shape in expected.items()
        if tuple(state[k].shape) != shape
    ]
    if wrong:
        raise ValueError(f"{path}: tensors whose shape does not match config.json: {wrong[:8]}")
    not_float = sorted(k for k, v in state.items() if not v.is_floating_point())
    if not_float:
        raise ValueError(f"{path}: tensors that are not floating point: {not_float[:8]}")


def read_released_tokenizer(folder: str | Path) -> ReleasedTokenizer:
    """Read a released iVideoGPT ``tokenizer/`` folder (module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"iVideoGPT tokenizer folder not found: {folder}")
    _refuse_pickles(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"iVideoGPT tokenizer config not found: {config_path}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON: {e}") from e
    kwargs, ignored, defaulted = released_tokenizer_config(config, str(config_path))
    weights_path = folder / WEIGHTS_FILE
    state = _read_weights(weights_path)
    with torch.device("meta"):
        skeleton = IVideoGPTTokenizer(**kwargs)
    _check_state(skeleton, state, weights_path)
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
    tokenizer = IVideoGPTTokenizer(**kwargs)
    tokenizer.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    tokenizer.eval()
    summary = (
        f"iVideoGPT tokenizer from {folder}: {len(state)} tensors ({', '.join(dtypes)}; loaded "
        f"as float32), {tokenizer.num_parameters():,} parameters, context_length "
        f"{kwargs['context_length']}, resolution {kwargs['resolution']}; ignored config "
        f"fields {ignored or 'none'}; original defaults used for {defaulted or 'none'}"
    )
    log.info(summary)
    return ReleasedTokenizer(tokenizer, kwargs, ignored, defaulted, summary)


def load_released_tokenizer(folder: Path) -> IVideoGPTTokenizer:
    """The :class:`IVideoGPTTokenizer` of a released iVideoGPT ``tokenizer/`` folder
    (``config.json`` + ``diffusion_pytorch_model.safetensors``), in eval mode.

    Raises ``FileNotFoundError`` for a missing folder or file and ``ValueError`` for a pickle
    in the folder, an unsupported config or weights that do not match the config.
    """
    return read_released_tokenizer(folder).tokenizer
