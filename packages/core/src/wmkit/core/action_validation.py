"""Checks behind ``ActionSpec``: its own fields, action tensors against it, and the config
values (mapping or JSON string) a spec is read from. Each error names the argument, what
was expected and what came, so a wrong action fails at the public boundary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from wmkit.core.action_spec import ActionSpec

__all__ = ["KINDS", "check_actions", "check_spec_fields", "spec_fields_from"]

KINDS = ("discrete", "multi_discrete", "continuous")


def check_spec_fields(spec: ActionSpec) -> None:
    """Raise ``ValueError`` unless ``spec``'s fields describe actions of its ``kind``."""
    if spec.kind not in KINDS:
        raise ValueError(f"ActionSpec.kind must be one of {KINDS}; got {spec.kind!r}")
    if spec.kind == "discrete":
        if spec.n is None or int(spec.n) < 1:
            raise ValueError(f"a discrete ActionSpec needs n >= 1; got n={spec.n!r}")
    elif spec.kind == "multi_discrete":
        if not spec.nvec or any(int(k) < 1 for k in spec.nvec):
            raise ValueError(
                f"a multi_discrete ActionSpec needs a non-empty nvec of positive ints; "
                f"got nvec={spec.nvec!r}"
            )
    else:
        _check_box(spec)


def _check_box(spec: ActionSpec) -> None:
    if spec.shape is None or any(int(s) < 1 for s in spec.shape):
        raise ValueError(
            f"a continuous ActionSpec needs a shape of positive ints; got {spec.shape!r}"
        )
    size = math.prod(spec.shape)
    for bound in ("low", "high"):
        value = getattr(spec, bound)
        if value is None or len(value) != size:
            raise ValueError(
                f"a continuous ActionSpec needs {bound} with {size} values "
                f"(one per component of shape {spec.shape}); got {value!r}"
            )
    if any(lo >= hi for lo, hi in zip(spec.low, spec.high)):  # type: ignore[arg-type]
        raise ValueError(
            f"ActionSpec needs low < high per component; got low={spec.low}, high={spec.high}"
        )
    if spec.bins < 2:
        raise ValueError(f"ActionSpec.bins must be >= 2; got {spec.bins}")


def check_actions(spec: ActionSpec, actions: Tensor, name: str, batch_dims: int) -> Tensor:
    """``ActionSpec.validate``: ``actions`` is ``[*batch, *action_shape]`` with ``spec``'s
    dtype and in its range; returns it unchanged, else raises ``TypeError``/``ValueError``."""
    if not isinstance(actions, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(actions).__name__}")
    expected = ("B", "T")[:batch_dims] if batch_dims <= 2 else ("*",) * batch_dims
    layout = "[" + ", ".join([*expected, *map(str, spec.action_shape)]) + "]"
    if actions.ndim != batch_dims + len(spec.action_shape) or (
        tuple(actions.shape[batch_dims:]) != spec.action_shape
    ):
        raise ValueError(
            f"{name} must be {layout} for {spec.describe()}; got shape {tuple(actions.shape)}"
        )
    if spec.kind == "continuous":
        _check_in_box(spec, actions, name, batch_dims)
    else:
        _check_choices(spec, actions, name)
    return actions


def _check_in_box(spec: ActionSpec, actions: Tensor, name: str, batch_dims: int) -> None:
    if not actions.is_floating_point():
        raise TypeError(f"{name} must be a float tensor for {spec.describe()}; got {actions.dtype}")
    if not torch.isfinite(actions).all():
        raise ValueError(f"{name} contains NaN or inf")
    flat = actions.reshape(*actions.shape[:batch_dims], -1)
    low = torch.tensor(spec.low, dtype=flat.dtype, device=flat.device)
    high = torch.tensor(spec.high, dtype=flat.dtype, device=flat.device)
    tol = 1e-6 * (high - low)
    bad = (flat < low - tol) | (flat > high + tol)
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        raise ValueError(
            f"{name} out of range for {spec.describe()}: value "
            f"{flat[tuple(idx)].item():.4g} at index {tuple(idx)} is outside "
            f"[{low[idx[-1]].item():.4g}, {high[idx[-1]].item():.4g}]"
        )


def _check_choices(spec: ActionSpec, actions: Tensor, name: str) -> None:
    if actions.is_floating_point() or actions.dtype == torch.bool or actions.is_complex():
        raise TypeError(
            f"{name} must be an integer tensor (torch.long) for {spec.describe()}; "
            f"got {actions.dtype}"
        )
    upper = torch.tensor(spec.token_vocab_sizes, device=actions.device)
    if spec.kind == "discrete":
        upper = upper[0]
    bad = (actions < 0) | (actions >= upper)
    if bad.any():
        idx = tuple(bad.nonzero()[0].tolist())
        limit = upper if upper.ndim == 0 else upper[idx[-1]]
        raise ValueError(
            f"{name} out of range for {spec.describe()}: value {actions[idx].item()} at "
            f"index {idx} is not in [0, {int(limit) - 1}]"
        )


def spec_fields_from(value: Any, name: str) -> dict[str, Any]:
    """A mapping of ``ActionSpec`` fields or a JSON string of one → a plain dict; the
    ``TypeError``/``ValueError`` names ``name``, what was expected and what came."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{name} must be a JSON object of ActionSpec fields, e.g. "
                f'\'{{"kind": "discrete", "n": 15}}\'; got {value!r} ({e})'
            ) from e
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be an ActionSpec, a mapping of its fields (kind, n, nvec, shape, "
            f"low, high, bins, names) or a JSON string of one; got {type(value).__name__}"
        )
    return dict(value)
