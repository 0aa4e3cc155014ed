"""`Batch`: a training batch of clips, typed, as every stage's LightningModule reads it.

Data modules collate clips into dicts (``{"frames": ..., "actions": ..., ...}``, what
PyTorch's default collate makes of :class:`~wmkit.core.data.ClipDataset` items); a module
turns one into a :class:`Batch` with :meth:`Batch.coerce` at the top of its step, which checks
the shapes and dtypes against each other once, with errors that name the field, instead of
each step reading ``batch["frames"]`` and failing somewhere inside the model. Lightning moves
a ``Batch`` to a device like a dict (it is a dataclass of tensors: ``move_data_to_device``
walks its fields), so a collate function may return one as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["Batch"]

_TENSORS = ("frames", "tokens", "future_tokens", "actions", "rewards", "dones", "step_mask")


@dataclass
class Batch:
    """Clips of ``T`` steps, ``B`` of them.

    Attributes:
        frames: ``float [B, T, C, H, W]`` in [-1, 1].
        actions: ``[B, T, *action_shape]``; action ``t`` follows frame ``t``.
        rewards: ``[B, T]``, the reward of action ``t``.
        dones: ``[B, T]``, whether action ``t`` ended the episode.
        step_mask: ``bool [B, T]``, false on steps that have no reward or done of their own
            (the padded step of a clip that ends on an episode's final observation).
        tokens: ``int [B, T, h, w]``, the frames' token ids in place of ``frames`` (a token
            cache; a compressive tokenizer's context steps).
        future_tokens: ``int [B, T', h', w']``, a compressive tokenizer's future steps.
        extra: whatever else the dict held (e.g. a clip's ``episode`` and ``start``), as is.
    """

    frames: Tensor | None = None
    actions: Tensor | None = None
    rewards: Tensor | None = None
    dones: Tensor | None = None
    step_mask: Tensor | None = None
    tokens: Tensor | None = None
    future_tokens: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, batch: Mapping[str, Any], require: Iterable[str] = ()) -> Batch:
        """A checked ``Batch`` from a collated dict (keys as the fields; other keys go to
        ``extra``); ``require`` names fields that must be present."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"a batch must be a dict or a Batch; got {type(batch).__name__}")
        known = {k: batch[k] for k in _TENSORS if k in batch}
        extra = {k: v for k, v in batch.items() if k not in known}
        out = cls(**known, extra=extra)
        out.validate(require)
        return out

    @classmethod
    def coerce(cls, batch: Batch | Mapping[str, Any], require: Iterable[str] = ()) -> Batch:
        """``batch`` as a checked ``Batch`` (a ``Batch`` is checked and returned as is)."""
        if isinstance(batch, Batch):
            batch.validate(require)
            return batch
        return cls.from_dict(batch, require)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, and ``extra``, as one dict (the collated form)."""
        out = {k: getattr(self, k) for k in _TENSORS if getattr(self, k) is not None}
        return {**out, **self.extra}

    def to(self, device: torch.device | str) -> Batch:
        """The batch with every tensor (``extra``'s too) on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in _TENSORS if getattr(self, k) is not None}
        extra = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.extra.items()}
        return dataclasses.replace(self, **moved, extra=extra)

    @property
    def size(self) -> int:
        """``B``."""
        return self._clip()[0].shape[0]

    @property
    def steps(self) -> int:
        """``T`` (compressive: context and future steps together)."""
        clip, _ = self._clip()
        return clip.shape[1] + (0 if self.future_tokens is None else self.future_tokens.shape[1])

    def _clip(self) -> tuple[Tensor, str]:
        if self.frames is not None:
            return self.frames, "frames"
        if self.tokens is not None:
            return self.tokens, "tokens"
        raise ValueError("a batch needs frames or tokens; got neither")

    def validate(self, require: Iterable[str] = ()) -> None:
        """Check that every field in ``require`` is set and that the set fields agree in shape
        and dtype; raises ``ValueError`` naming the field."""
        missing = [k for k in require if getattr(self, k, None) is None]
        if missing:
            raise ValueError(f"the batch has no {missing}; it has {sorted(self.to_dict())}")
        for name in _TENSORS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"batch {name} must be a tensor; got {type(value).__name__}")
        clip, clip_name = self._clip()
        if self.frames is not None:
            _check(self.frames, "frames", 5, "[B, T, C, H, W]", floating=True)
        for name in ("tokens", "future_tokens"):
            value = getattr(self, name)
            if value is not None:
                _check(value, name, 4, "[B, T, h, w]", floating=False)
        b = clip.shape[0]
        if self.future_tokens is not None and self.future_tokens.shape[0] != b:
            raise ValueError(
                f"batch future_tokens has batch size {self.future_tokens.shape[0]} but "
                f"{clip_name} has {b}"
            )
        for name in ("actions", "rewards", "dones", "step_mask"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.ndim < 2 or value.shape[0] != b:
                raise ValueError(
                    f"batch {name} must be [B, T, ...] with B = {b} (as {clip_name}); got shape "
                    f"{tuple(value.shape)}"
                )
            if name != "actions" and value.ndim != 2:
                raise ValueError(f"batch {name} must be [B, T]; got shape {tuple(value.shape)}")


def _check(value: Tensor, name: str, ndim: int, shape: str, floating: bool) -> None:
    if value.ndim != ndim:
        raise ValueError(f"batch {name} must be {shape}; got shape {tuple(value.shape)}")
    if value.is_floating_point() != floating:
        kind = "floating point" if floating else "integer token ids"
        raise ValueError(f"batch {name} must be {kind}; got dtype {value.dtype}")
