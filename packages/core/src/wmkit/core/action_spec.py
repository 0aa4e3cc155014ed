"""`ActionSpec`: what an action is, for every model, dataset and environment in wmkit.

Three kinds cover the settings of the papers we follow:

- ``discrete``: one choice out of ``n`` (Crafter's 17 actions, Atari). Per-step shape ``()``.
- ``multi_discrete``: several independent choices, one per entry of ``nvec``; e.g. MineWorld's
  keyboard keys plus binned mouse deltas, or ViZDoom's buttons (``nvec=(2, 2, 2)``).
  Per-step shape ``(len(nvec),)``.
- ``continuous``: a float box with ``shape``, ``low`` and ``high`` (Meta-World's 4-D arm
  control). Per-step shape ``shape``.

Action tensors at a public boundary are ``[B, T, *spec.shape]`` (``validate``). Token models
need every action as integers: ``to_tokens`` maps any spec to ``[..., num_tokens]`` ids, each
column with its own vocabulary (``token_vocab_sizes``), discretising continuous values into
``bins`` uniform bins over ``[low, high]`` (as MineWorld bins the camera and iVideoGPT's
discrete-action variant bins the arm); ``from_tokens`` inverts it (bin centres).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from wmkit.core.action_encoding import action_features, sample_actions
from wmkit.core.action_validation import check_actions, check_spec_fields, spec_fields_from

__all__ = ["ActionKind", "ActionSpec"]

ActionKind = Literal["discrete", "multi_discrete", "continuous"]


@dataclass(frozen=True)
class ActionSpec:
    """Description of one step's action.

    Build with the constructors ``ActionSpec.discrete``, ``ActionSpec.multi_discrete`` and
    ``ActionSpec.continuous`` rather than by hand.

    Args:
        kind: ``"discrete"``, ``"multi_discrete"`` or ``"continuous"``.
        n: number of choices (discrete).
        nvec: number of choices per component (multi-discrete).
        shape: per-step shape of a continuous action.
        low: lower bound per component of a continuous action (flattened, len = prod(shape)).
        high: upper bound per component of a continuous action (flattened).
        bins: number of uniform bins per continuous component used by ``to_tokens``.
        names: optional human-readable names: one per choice (discrete), per component
            (multi-discrete, continuous). Used by play UIs and plots.
    """

    kind: ActionKind
    n: int | None = None
    nvec: tuple[int, ...] | None = None
    shape: tuple[int, ...] | None = None
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    bins: int = 256
    names: tuple[str, ...] | None = field(default=None)

    # ----------------------------------------------------------------------------------
    # construction
    def __post_init__(self) -> None:
        # JSON round trips give lists; normalise to tuples so specs compare and hash.
        for name in ("nvec", "shape", "low", "high", "names"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        check_spec_fields(self)

    @classmethod
    def discrete(cls, n: int, names: Sequence[str] | None = None) -> ActionSpec:
        """One choice out of ``n`` per step."""
        if names is not None and len(names) != n:
            raise ValueError(f"discrete ActionSpec with n={n} needs {n} names; got {len(names)}")
        return cls(kind="discrete", n=int(n), names=tuple(names) if names else None)

    @classmethod
    def multi_discrete(cls, nvec: Sequence[int], names: Sequence[str] | None = None) -> ActionSpec:
        """One choice per component; ``nvec[i]`` choices for component ``i``."""
        if names is not None and len(names) != len(nvec):
            raise ValueError(
                f"multi_discrete ActionSpec with {len(nvec)} components needs as many names; "
                f"got {len(names)}"
            )
        return cls(
            kind="multi_discrete",
            nvec=tuple(int(k) for k in nvec),
            names=tuple(names) if names else None,
        )

    @classmethod
    def continuous(
        cls,
        shape: int | Sequence[int],
        low: float | Sequence[float] = -1.0,
        high: float | Sequence[float] = 1.0,
        bins: int = 256,
        names: Sequence[str] | None = None,
    ) -> ActionSpec:
        """A float box; scalar bounds broadcast to every component."""
        shape_t = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        size = math.prod(shape_t)
        low_t = (float(low),) * size if isinstance(low, int | float) else tuple(map(float, low))
        hi_t = (float(high),) * size if isinstance(high, int | float) else tuple(map(float, high))
        if names is not None and len(names) != size:
            raise ValueError(
                f"continuous ActionSpec with {size} components needs as many names; "
                f"got {len(names)}"
            )
        return cls(
            kind="continuous",
            shape=shape_t,
            low=low_t,
            high=hi_t,
            bins=int(bins),
            names=tuple(names) if names else None,
        )

    # ----------------------------------------------------------------------------------
    # properties
    @property
    def action_shape(self) -> tuple[int, ...]:
        """Per-step shape: ``()`` discrete, ``(len(nvec),)`` multi-discrete, ``shape``."""
        if self.kind == "discrete":
            return ()
        if self.kind == "multi_discrete":
            return (len(self.nvec),)  # type: ignore[arg-type]
        return self.shape  # type: ignore[return-value]

    @property
    def dtype(self) -> torch.dtype:
        """``torch.long`` for discrete kinds, ``torch.float32`` for continuous."""
        return torch.float32 if self.kind == "continuous" else torch.long

    @property
    def is_discrete(self) -> bool:
        return self.kind != "continuous"

    @property
    def num_tokens(self) -> int:
        """How many integer tokens one step's action becomes under ``to_tokens``."""
        if self.kind == "discrete":
            return 1
        if self.kind == "multi_discrete":
            return len(self.nvec)  # type: ignore[arg-type]
        return math.prod(self.shape)  # type: ignore[arg-type]

    @property
    def token_vocab_sizes(self) -> tuple[int, ...]:
        """Vocabulary size of each token column produced by ``to_tokens``."""
        if self.kind == "discrete":
            return (int(self.n),)  # type: ignore[arg-type]
        if self.kind == "multi_discrete":
            return tuple(self.nvec)  # type: ignore[arg-type]
        return (self.bins,) * self.num_tokens

    # ----------------------------------------------------------------------------------
    # validation
    def validate(self, actions: Tensor, name: str = "actions", batch_dims: int = 2) -> Tensor:
        """Check ``actions`` is ``[*batch, *action_shape]`` with the right dtype and range.

        ``batch_dims`` is 2 for ``[B, T, ...]`` sequences and 1 for a single step ``[B, ...]``.
        Returns the tensor unchanged; raises ``TypeError``/``ValueError`` naming the problem.
        """
        return check_actions(self, actions, name, batch_dims)

    def describe(self) -> str:
        """Short human-readable form, used in error messages."""
        if self.kind == "discrete":
            return f"ActionSpec.discrete(n={self.n})"
        if self.kind == "multi_discrete":
            return f"ActionSpec.multi_discrete(nvec={list(self.nvec)})"  # type: ignore[arg-type]
        return f"ActionSpec.continuous(shape={self.shape})"

    def check_compatible(self, other: ActionSpec, what: str = "action spec") -> None:
        """Raise ``ValueError`` when ``other`` describes different actions than ``self``."""
        if (
            self.kind != other.kind
            or self.action_shape != other.action_shape
            or (
                self.token_vocab_sizes != other.token_vocab_sizes
                or (self.kind == "continuous" and (self.low, self.high) != (other.low, other.high))
            )
        ):
            raise ValueError(
                f"mismatched {what}: expected {self.describe()}, got {other.describe()}"
            )

    # ----------------------------------------------------------------------------------
    # sampling
    def sample(
        self, batch_shape: Sequence[int] = (), generator: torch.Generator | None = None
    ) -> Tensor:
        """Uniformly random actions of shape ``[*batch_shape, *action_shape]``."""
        return sample_actions(self, batch_shape, generator)

    # ----------------------------------------------------------------------------------
    # tokens
    def discretize(self, actions: Tensor, bins: int | None = None) -> Tensor:
        """Continuous actions → bin ids in ``[0, bins)``, same shape, uniform over [low, high].

        Values outside the box are clipped into the edge bins.
        """
        if self.kind != "continuous":
            raise ValueError(f"discretize needs a continuous ActionSpec; got {self.describe()}")
        bins = self.bins if bins is None else int(bins)
        low, high = self._bounds(actions)
        u = (actions.float() - low) / (high - low)
        return (u * bins).floor().long().clamp(0, bins - 1)

    def undiscretize(self, ids: Tensor, bins: int | None = None) -> Tensor:
        """Bin ids → the bins' centre values (float32), inverse of ``discretize`` up to
        half a bin width."""
        if self.kind != "continuous":
            raise ValueError(f"undiscretize needs a continuous ActionSpec; got {self.describe()}")
        bins = self.bins if bins is None else int(bins)
        if ids.is_floating_point():
            raise TypeError(f"bin ids must be an integer tensor; got {ids.dtype}")
        if (ids < 0).any() or (ids >= bins).any():
            raise ValueError(f"bin ids must be in [0, {bins - 1}]")
        low, high = self._bounds(ids)
        return low + (ids.float() + 0.5) / bins * (high - low)

    def to_tokens(self, actions: Tensor) -> Tensor:
        """Actions ``[*batch, *action_shape]`` → long ids ``[*batch, num_tokens]``.

        Column ``i`` takes values in ``[0, token_vocab_sizes[i])``.
        """
        nb = actions.ndim - len(self.action_shape)
        if nb < 0 or tuple(actions.shape[nb:]) != self.action_shape:
            raise ValueError(
                f"actions must end with the action shape {self.action_shape} for "
                f"{self.describe()}; got shape {tuple(actions.shape)}"
            )
        batch = actions.shape[:nb]
        ids = self.discretize(actions) if self.kind == "continuous" else actions.long()
        return ids.reshape(*batch, self.num_tokens)

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """Inverse of ``to_tokens``: ``[*batch, num_tokens]`` → ``[*batch, *action_shape]``."""
        if tokens.ndim < 1 or tokens.shape[-1] != self.num_tokens:
            raise ValueError(
                f"action tokens must be [..., {self.num_tokens}] for {self.describe()}; "
                f"got shape {tuple(tokens.shape)}"
            )
        batch = tokens.shape[:-1]
        if self.kind == "continuous":
            values = self.undiscretize(tokens.reshape(*batch, *self.action_shape))
            return values
        return tokens.long().reshape(*batch, *self.action_shape)

    @property
    def feature_dim(self) -> int:
        """Width of ``features``: one-hot sizes summed (discrete), components (continuous)."""
        return self.num_tokens if self.kind == "continuous" else sum(self.token_vocab_sizes)

    def features(self, actions: Tensor) -> Tensor:
        """Actions ``[*batch, *action_shape]`` → float ``[*batch, feature_dim]`` for a network's
        input: one-hot per discrete component, each continuous component rescaled to [-1, 1]."""
        return action_features(self, actions)

    def _bounds(self, like: Tensor) -> tuple[Tensor, Tensor]:
        low = torch.tensor(self.low, dtype=torch.float32, device=like.device)
        high = torch.tensor(self.high, dtype=torch.float32, device=like.device)
        return low.reshape(self.action_shape), high.reshape(self.action_shape)

    # ----------------------------------------------------------------------------------
    # serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form; ``None`` fields are dropped."""
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
            if v is not None
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        """Inverse of ``to_dict``; unknown keys are an error (a typo would go unnoticed)."""
        if not isinstance(data, dict):
            raise TypeError(f"ActionSpec.from_dict needs a dict; got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ActionSpec fields {sorted(unknown)}")
        if "kind" not in data:
            raise ValueError("ActionSpec dict needs a 'kind'")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def coerce(cls, value: Any, name: str = "action_spec") -> ActionSpec:
        """An ``ActionSpec``, a mapping of its fields (as YAML configs give it) or a JSON
        string of one (as a command line gives it) → ``ActionSpec``.

        This is the one conversion every place that accepts a spec from a config or a
        command line goes through, so ``{kind: discrete, n: 15}`` works wherever a spec does.
        Raises ``TypeError``/``ValueError`` naming ``name``, what was expected and what came.
        """
        if isinstance(value, ActionSpec):
            return value
        fields = spec_fields_from(value, name)
        try:
            return cls.from_dict(fields)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: {e}; got {fields!r}") from e

    @classmethod
    def coerce_optional(cls, value: Any, name: str = "action_spec") -> ActionSpec | None:
        """``coerce`` that lets ``None`` through (a spec to infer from the data)."""
        return None if value is None else cls.coerce(value, name)

    @classmethod
    def from_json(cls, text: str) -> ActionSpec:
        return cls.from_dict(json.loads(text))
