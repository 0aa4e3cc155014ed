"""How well a world model's reward and termination heads predict along its own rollouts.

An agent trained in imagination (``wmkit-agents``) learns from the rewards and terminations
the world model predicts for the frames it generates, not for real frames. So they are
scored here on the rollouts :func:`~wmkit.eval.rollout.evaluate_rollouts` makes, against the
clip's recorded ``rewards`` and ``dones``: reward ``t`` and done ``t`` follow action ``t``
(DESIGN.md §3), so the ``k``-th generated step is scored against step ``context - 1 + k``.

- Rewards: the MSE per rollout step and overall, beside the MSE of always predicting 0
  (sparse rewards, Crafter's included, make that a strong baseline).
- Terminations: accuracy, and precision and recall of the predicted ends (``done > 0.5``),
  with the number of real ends (without any, precision and recall are undefined: ``None``).

Measured only when the batches carry the targets and the model predicts them. A model that
predicts the sign of the reward (DIAMOND, trained on clipped rewards, says so with
``reward_transform = "sign"``) is scored against the sign of the recorded rewards.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.eval.frame_metrics import PerStepMean

__all__ = ["REWARD_TRANSFORMS", "HeadScores", "describe_heads", "reward_transform_of"]

#: what a world model's ``reward_transform`` may say its reward head predicts
REWARD_TRANSFORMS = ("identity", "sign")


def reward_transform_of(world_model: Any) -> str:
    """What ``world_model``'s reward head predicts: its ``reward_transform`` attribute
    (``"sign"`` for DIAMOND), else ``"identity"``."""
    return str(getattr(world_model, "reward_transform", "identity"))


class HeadScores:
    """Accumulates reward and termination errors over batches of rollouts.

    Args:
        horizon: generated steps per rollout.
        reward_transform: ``identity``, or ``sign`` for a model that predicts the reward's
            sign (the recorded rewards are then compared by their sign).
    """

    def __init__(self, horizon: int, reward_transform: str = "identity") -> None:
        if reward_transform not in REWARD_TRANSFORMS:
            raise ValueError(
                f"reward_transform must be one of {REWARD_TRANSFORMS}; got {reward_transform!r}"
            )
        self.horizon = horizon
        self.reward_transform = reward_transform
        self.reward_mse = PerStepMean(horizon)
        self.reward_mse_zero = PerStepMean(horizon)
        self.done_correct = PerStepMean(horizon)
        self.tp = self.fp = self.fn = 0.0

    def update(
        self,
        predicted_rewards: list[Tensor | None],
        predicted_dones: list[Tensor | None],
        rewards: Tensor | None,
        dones: Tensor | None,
    ) -> None:
        """One batch: each sample's predicted ``[B, H]`` rewards and dones (``None`` when the
        model has no such head) and the real ``[B, H]`` ones (``None`` when the batch has
        none). Samples of a stochastic model are averaged."""
        if rewards is not None and predicted_rewards and None not in predicted_rewards:
            real = self._check(rewards, "rewards")
            if self.reward_transform == "sign":
                real = real.sign()
            err = torch.stack([(p.float().to(real.device) - real) ** 2 for p in predicted_rewards])
            self.reward_mse.update(err.mean(0))
            self.reward_mse_zero.update(real**2)
        if dones is not None and predicted_dones and None not in predicted_dones:
            real = self._check(dones, "dones") > 0.5
            for p in predicted_dones:
                pred = p.to(real.device) > 0.5
                self.done_correct.update((pred == real).float() / len(predicted_dones))
                self.tp += float((pred & real).sum()) / len(predicted_dones)
                self.fp += float((pred & ~real).sum()) / len(predicted_dones)
                self.fn += float((~pred & real).sum()) / len(predicted_dones)

    def _check(self, values: Tensor, name: str) -> Tensor:
        if values.ndim != 2 or values.shape[1] != self.horizon:
            raise ValueError(
                f"{name} must be [B, horizon = {self.horizon}] for the generated steps; got "
                f"{tuple(values.shape)}"
            )
        return values.float()

    def compute(self) -> dict[str, Any]:
        """``{}`` when nothing was scored, else the reward and/or done figures."""
        out: dict[str, Any] = {}
        if self.reward_mse.count > 0:
            out["reward_mse"] = self.reward_mse.overall()
            out["reward_mse_per_step"] = self.reward_mse.compute().tolist()
            out["reward_mse_zero"] = self.reward_mse_zero.overall()
            out["reward_transform"] = self.reward_transform
        if self.done_correct.count > 0:
            out["done_accuracy"] = self.done_correct.overall()
            out["done_real_ends"] = self.tp + self.fn
            predicted = self.tp + self.fp
            out["done_precision"] = self.tp / predicted if predicted else None
            out["done_recall"] = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        return out


def _reward_line(h: dict[str, Any], where: str) -> str:
    of = " (of the reward's sign)" if h.get("reward_transform") == "sign" else ""
    return (
        f"reward MSE{of} {where}: **{h['reward_mse']:.4g}** (always 0: {h['reward_mse_zero']:.4g})"
    )


def _done_line(h: dict[str, Any], where: str) -> str:
    pr = ", ".join(
        f"{k} {'undefined' if h[f'done_{k}'] is None else format(h[f'done_{k}'], '.3f')}"
        for k in ("precision", "recall")
    )
    return (
        f"termination accuracy{where}: **{h['done_accuracy']:.3f}** ({pr}; "
        f"{h['done_real_ends']:g} real ends)"
    )


def describe_heads(h: dict[str, Any]) -> list[str]:
    """``HeadScores.compute()``'s figures as report lines (Markdown bold on the headline), and
    under ``"one_step"`` those of :func:`~wmkit.eval.one_step.score_heads_one_step`."""
    lines = []
    if "reward_mse" in h:
        lines.append(_reward_line(h, "along the rollouts"))
    if "done_accuracy" in h:
        lines.append(_done_line(h, ""))
    one = h.get("one_step") or {}
    where = f"one step from real context, on all {one.get('transitions')} held-out transitions"
    if "reward_mse" in one:
        lines.append(_reward_line(one, where))
    if "done_accuracy" in one:
        lines.append(_done_line(one, " " + where))
    return lines
