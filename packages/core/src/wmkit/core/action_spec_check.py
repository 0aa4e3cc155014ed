"""`ActionSpecCheck`: a run stops before its first step when the data's actions are not the model's.

A datamodule whose dataset has fewer actions than the model was built for (or other bounds,
or another kind) still yields tensors the model accepts: discrete ids below the model's
``n`` embed without error, and continuous values are just numbers. Training then goes on
silently on the wrong action meanings. Every ``wmkit <stage>`` command adds this callback, so
``fit``, ``validate``, ``test`` and ``predict`` compare the two specs at ``setup`` (after the
datamodule's own ``setup``, before any checkpoint is restored) and stop with both named.

Specs are compared with :meth:`ActionSpec.check_compatible` (kind, shape, per-column
vocabulary, continuous bounds; display names do not count). The model's spec is its
LightningModule's ``action_spec`` or, as in every wmkit stage, that of the network it holds
in ``model``; the data's is the datamodule's ``action_spec``. Where either is missing (a
tokenizer or latent-action stage, a folder of videos), or the datamodule's batches carry no
actions (``with_steps=False``), there is nothing to compare.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from wmkit.core.action_spec import ActionSpec

__all__ = ["ActionSpecCheck", "check_action_specs", "module_action_spec"]


def module_action_spec(module: Any) -> ActionSpec | None:
    """The actions ``module`` takes: its own ``action_spec`` or its ``model``'s, else ``None``."""
    for owner in (module, getattr(module, "model", None)):
        spec = getattr(owner, "action_spec", None)
        if isinstance(spec, ActionSpec):
            return spec
    return None


def _show(spec: ActionSpec, other: ActionSpec) -> str:
    # describe() leaves out the bounds and bins; show everything when it cannot tell them apart
    return spec.describe() if spec.describe() != other.describe() else repr(spec)


def check_action_specs(datamodule: Any, module: Any) -> None:
    """Raise ``ValueError`` naming both specs when ``datamodule``'s actions are not ``module``'s.

    Does nothing when either side has no action spec, or when the datamodule yields no
    actions (``with_steps=False``: frames only, as an action-free model fine-tunes on them).
    """
    model_spec = module_action_spec(module)
    if model_spec is None:  # checked first: a model without actions never reads the data's
        return
    if not dict(getattr(datamodule, "hparams", None) or {}).get("with_steps", True):
        return
    data_spec = getattr(datamodule, "action_spec", None)
    if not isinstance(data_spec, ActionSpec):
        return
    try:
        model_spec.check_compatible(data_spec)
    except ValueError:
        raise ValueError(
            f"the data's actions do not match the model's: {type(datamodule).__name__} gives "
            f"{_show(data_spec, model_spec)} but {type(module).__name__} takes "
            f"{_show(model_spec, data_spec)}. Train on a dataset recorded with the model's "
            "action spec, or build the model with the dataset's (its manifest.json names it)"
        ) from None


class ActionSpecCheck(L.Callback):
    """Compare the datamodule's and the model's action specs when a run sets up."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            check_action_specs(datamodule, pl_module)
