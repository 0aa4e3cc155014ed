"""``TransitionHeads``: the reward and termination heads of a world model, with their losses.

Each head is a :class:`~wmkit.diffusion_world.reward_head.RewardHead` reading a transition
``(frame t, action t, frame t + 1)`` (DESIGN.md §3: reward ``t`` follows action ``t``); the
termination head's output is the logit of the transition ending the episode (Gymnasium's
``terminated``), which imagined training episodes (``wmkit-agents``) end on. DIAMOND also
keeps its reward/termination model apart from the denoiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import ActionSpec
from wmkit.diffusion_world.reward_head import RewardHead

__all__ = ["HeadsConfig", "TransitionHeads"]

#: the heads' target names, the loss names they log under
HEAD_LOSSES = {"rewards": "reward_mse", "dones": "done_bce"}


@dataclass
class HeadsConfig:
    """Which transition heads a world model has.

    Args:
        reward: a reward head (``StepOutput.reward``, ``Rollout.rewards``).
        done: a termination head (``StepOutput.done``, ``Rollout.dones``: 1.0 where its logit
            is positive).
        hidden: width of each head.
    """

    reward: bool = True
    done: bool = False
    hidden: int = 32

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden (0.1.x: reward_hidden) must be >= 1; got {self.hidden}")


class TransitionHeads(nn.Module):
    """Reward and/or termination heads on a model's frames (pixels or latents).

    Args:
        action_spec: the actions.
        channels: channels of one frame the heads read.
        reward: add the reward head (``reward``, MSE).
        done: add the termination head (``done``, binary cross-entropy on its logit).
        hidden: width of each head.
    """

    def __init__(
        self,
        action_spec: ActionSpec,
        channels: int,
        reward: bool = True,
        done: bool = False,
        hidden: int = 32,
    ) -> None:
        super().__init__()
        self.action_spec = action_spec
        if hidden < 1:
            raise ValueError(f"reward_hidden must be >= 1; got {hidden}")
        self.reward = RewardHead(action_spec, channels, hidden) if reward else None
        self.done = RewardHead(action_spec, channels, hidden) if done else None

    def head(self, key: str) -> RewardHead | None:
        """The head of target ``key`` (``"rewards"`` or ``"dones"``), or ``None``."""
        return self.reward if key == "rewards" else self.done

    def forward(self, previous: Tensor, new: Tensor, action: Tensor) -> dict[str, Tensor]:
        """``{"reward": [N], "done": [N] (0/1)}`` for the heads present, on transitions
        ``(previous [N, c, h, w], action [N, ...], new [N, c, h, w])``."""
        out = {}
        if self.reward is not None:
            out["reward"] = self.reward(previous, new, action).float()
        if self.done is not None:
            out["done"] = (self.done(previous, new, action) > 0).float()
        return out

    @staticmethod
    def loss(key: str, pred: Tensor, target: Tensor) -> Tensor:
        """The reward head's MSE (``key="rewards"``) or the done head's binary cross-entropy
        on its logits (``"dones"``, targets checked to be 0 or 1)."""
        if key == "rewards":
            return F.mse_loss(pred.float(), target.float())
        if ((target != 0) & (target != 1)).any():
            raise ValueError("dones must be 0 or 1")
        return F.binary_cross_entropy_with_logits(pred.float(), target.float())

    @staticmethod
    def check_targets(targets: Tensor, b: int, t: int, key: str) -> None:
        """``targets`` must be ``[B, T]`` or ``[B, T - 1]`` for frames ``[B, T]``."""
        if targets.shape not in ((b, t), (b, t - 1)):
            raise ValueError(
                f"{key} must be [B, T] or [B, T - 1] for frames [B, T] = {(b, t)}; "
                f"got {tuple(targets.shape)}"
            )

    def check_clip(
        self, key: str, shape: tuple[int, int], actions: Tensor, targets: Tensor
    ) -> None:
        """Inputs of head ``key`` on a clip of ``shape = (B, T)`` frames: ``T >= 2``,
        ``actions`` and ``targets`` ``[B, T]`` or ``[B, T - 1]``."""
        b, t = shape
        if t < 2:
            raise ValueError(f"{key[:-1]}_loss needs clips of >= 2 frames; got {t}")
        self.action_spec.validate(actions)
        if actions.shape[:2] not in ((b, t), (b, t - 1)):
            raise ValueError(
                f"actions must be [B, T, ...] or [B, T - 1, ...] for frames [B, T] = {(b, t)}; "
                f"got {tuple(actions.shape)}"
            )
        self.check_targets(targets, b, t, key)

    def clip_outputs(self, key: str, x: Tensor, actions: Tensor) -> Tensor:
        """Head ``key`` on every transition of model-space frames ``x [B, T, c, h, w]`` with
        ``actions [B, >= T - 1, ...]`` → ``[B, T - 1]``."""
        b, t = x.shape[:2]
        head = self.head(key)
        return head(
            x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1), actions[:, : t - 1].flatten(0, 1)
        ).reshape(b, t - 1)

    def generated_losses(
        self, x: Tensor, actions: Tensor, targets: dict[str, Tensor], index: int, new: Tensor
    ) -> dict[str, Tensor]:
        """The losses (``reward_mse`` / ``done_bce``) of the heads on the transition into a
        generated frame ``new [B, c, h, w]``: real frame ``x[:, index - 1]``, action
        ``index - 1``, against ``targets[key][:, index - 1]``."""
        return {
            HEAD_LOSSES[key]: self.loss(
                key,
                self.head(key)(x[:, index - 1], new, actions[:, index - 1]),
                target[:, index - 1],
            )
            for key, target in targets.items()
        }

    def trainable_targets(
        self, targets: dict[str, Tensor | None], b: int, t: int
    ) -> dict[str, Tensor]:
        """The given ``targets`` (``rewards`` / ``dones``) of the heads present, checked."""
        out = {
            key: target
            for key, target in targets.items()
            if target is not None and self.head(key) is not None
        }
        for key, target in out.items():
            self.check_targets(target, b, t, key)
        return out
