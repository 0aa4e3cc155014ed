"""Actions as network inputs and random draws, behind ``ActionSpec.features`` and
``ActionSpec.sample``: one-hot per discrete component, continuous components rescaled from
``[low, high]`` to ``[-1, 1]``; uniform draws over the choices or the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from wmkit.core.action_spec import ActionSpec

__all__ = ["action_features", "sample_actions"]


def action_features(spec: ActionSpec, actions: Tensor) -> Tensor:
    """``ActionSpec.features``: ``[*batch, *action_shape]`` → float ``[*batch, feature_dim]``."""
    nb = actions.ndim - len(spec.action_shape)
    if spec.kind == "continuous":
        low, high = spec._bounds(actions)
        x = (actions.float() - low) / (high - low) * 2 - 1
        return x.reshape(*actions.shape[:nb], -1)
    ids = spec.to_tokens(actions)  # [*batch, K]
    return torch.cat(
        [
            torch.nn.functional.one_hot(ids[..., k], n).float()
            for k, n in enumerate(spec.token_vocab_sizes)
        ],
        dim=-1,
    )


def sample_actions(
    spec: ActionSpec, batch_shape: Sequence[int], generator: torch.Generator | None
) -> Tensor:
    """``ActionSpec.sample``: uniformly random actions ``[*batch_shape, *action_shape]``."""
    batch_shape = tuple(batch_shape)
    if spec.kind == "continuous":
        u = torch.rand((*batch_shape, spec.num_tokens), generator=generator)
        low, high = torch.tensor(spec.low), torch.tensor(spec.high)
        return (low + u * (high - low)).reshape(*batch_shape, *spec.action_shape)
    sizes = torch.tensor(spec.token_vocab_sizes, dtype=torch.float64)
    u = torch.rand((*batch_shape, len(sizes)), generator=generator, dtype=torch.float64)
    ids = (u * sizes).floor().long().clamp_max(sizes.long() - 1)
    return ids.reshape(*batch_shape, *spec.action_shape)
