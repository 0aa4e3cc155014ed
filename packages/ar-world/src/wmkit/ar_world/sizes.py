"""Named transformer sizes, DiT-style: ``tiny`` for CPU tests up to MineWorld's scales.

Parameter counts of the full world model (embeddings and heads included) depend on the
vocabulary and layout; the README lists them for an 8192-token tokenizer at 24×14 tokens per
frame and MineWorld's 11 action tokens (``tests/test_sizes.py`` checks them on the meta
device).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SIZES", "transformer_spec"]

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"dim": 32, "depth": 2, "heads": 2, "ffn_multiple": 32},
    "small": {"dim": 128, "depth": 4, "heads": 4, "ffn_multiple": 64},
    "300M": {"dim": 1024, "depth": 24, "heads": 16, "ffn_multiple": 256},
    "700M": {"dim": 1536, "depth": 24, "heads": 24, "ffn_multiple": 256},
    "1.2B": {"dim": 2048, "depth": 24, "heads": 32, "ffn_multiple": 256},
}


def transformer_spec(size: str = "tiny", gradient_checkpointing: bool = False) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of the :class:`~wmkit.ar_world.transformer.Transformer`
    of a named size, as ``ARWorldModel(transformer=...)`` takes it."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    return {
        "class_path": "wmkit.ar_world.transformer.Transformer",
        "init_args": {**SIZES[size], "gradient_checkpointing": gradient_checkpointing},
    }
