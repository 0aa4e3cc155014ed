"""``HeadTrainingMixin``: how a diffusion world model trains its :class:`TransitionHeads`.

The heads read transitions ``(frame t, action t, frame t + 1)``. :meth:`reward_loss` /
:meth:`done_loss` train them on real next frames; ``step`` feeds them the *generated* frame,
which the network renders differently (blurred, an event drawn elsewhere or not at all), so
:meth:`generated_head_losses` also trains them on next frames the model samples itself
(:meth:`sample_frame`), and they learn what survives generation. The Lightning module runs
that sampling on its own random stream, so the generator's training is unchanged
(DESIGN.md §5a).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from wmkit.core import check_video
from wmkit.diffusion_world.transition_heads import TransitionHeads

__all__ = ["HeadTrainingMixin"]


class HeadTrainingMixin:
    """The heads' losses of a :class:`~wmkit.diffusion_world.DiffusionWorldModel`, which
    provides ``heads``, ``reward_head`` / ``done_head``, ``window`` (its sampler),
    ``_encoded``, ``frame_conditions``, ``action_embed``, ``action_spec``, ``_tokenizer`` and
    ``context_window``."""

    heads: TransitionHeads | None
    window: Any
    action_embed: Any

    def reward_loss(
        self, frames: Tensor, actions: Tensor, rewards: Tensor, latents: Tensor | None = None
    ) -> Tensor:
        """MSE of the reward head on a clip's transitions: reward ``t`` (``rewards [B, T]``)
        from frames ``t``, ``t + 1`` (``frames [B, T, C, H, W]``, clean) and action ``t``.
        ``latents``: ``encode(frames)``, when already computed."""
        if self.reward_head is None:
            raise ValueError(
                "this model has no reward head; build it with heads=HeadsConfig(reward=True) "
                "(0.1.x: reward_head=True)"
            )
        return TransitionHeads.loss(
            *self._transition_outputs("rewards", frames, actions, rewards, latents)
        )

    def done_loss(
        self, frames: Tensor, actions: Tensor, dones: Tensor, latents: Tensor | None = None
    ) -> Tensor:
        """Binary cross-entropy of the done head on a clip's transitions (``dones [B, T]``,
        0/1: action ``t`` ended the episode), as :meth:`reward_loss`."""
        if self.done_head is None:
            raise ValueError(
                "this model has no done head; build it with heads=HeadsConfig(done=True) "
                "(0.1.x: done_head=True)"
            )
        return TransitionHeads.loss(
            *self._transition_outputs("dones", frames, actions, dones, latents)
        )

    def _transition_outputs(
        self,
        key: str,
        frames: Tensor,
        actions: Tensor,
        targets: Tensor,
        latents: Tensor | None = None,
    ) -> tuple[str, Tensor, Tensor]:
        """``(key, head key's outputs, targets)`` on every transition of a clip, ``[B, T - 1]``."""
        check_video(frames, "frames")
        self.heads.check_clip(key, frames.shape[:2], actions, targets)
        x = self._encoded(frames, latents)  # [B, T, c, h, w]
        return key, self.heads.clip_outputs(key, x, actions), targets[:, : frames.shape[1] - 1]

    def _head_view(self, x: Tensor) -> Tensor:
        """A generated frame as the heads read it: pixels clamped to [-1, 1], latents as is."""
        return x.clamp(-1, 1) if self._tokenizer is None else x

    @torch.no_grad()
    def sample_frame(
        self, frames: Tensor, actions: Tensor, index: int, latents: Tensor | None = None
    ) -> Tensor:
        """The model's own sample of frame ``index`` of each clip (``frames [B, T, C, H, W]``,
        ``actions [B, T, ...]`` or ``[B, T - 1, ...]``) from its real past: the frames before it
        inside the window, their actions and action ``index - 1``. What ``step`` generates
        one step after ``reset`` on that past, in the model's space (pixels, or the
        tokenizer's latents) → ``[B, c, h, w]``. ``latents``: ``encode(frames)``, when already
        computed. Draws from torch's global random stream. Frame models only (``k = 1``)."""
        if getattr(self, "frames_per_step", 1) > 1:
            raise ValueError("sample_frame samples one frame: frames_per_step must be 1")
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if not 1 <= index < t:
            raise ValueError(f"index must be in [1, {t - 1}] for clips of {t} frames; got {index}")
        self.action_spec.validate(actions)
        if actions.shape[0] != b or actions.shape[1] < index:
            raise ValueError(
                f"actions must be [B, >= {index}, ...] with B = {b} to sample frame {index}; "
                f"got {tuple(actions.shape)}"
            )
        x = self._encoded(frames, latents)  # [B, T, c, h, w]
        start = max(0, index - (self.context_window - 1))
        hist = x[:, start:index]
        hist_cond = self.frame_conditions(actions, index, b)[:, start:]  # [B, L, D]
        cond = self.action_embed(actions[:, index - 1])  # [B, D]
        null = self.action_embed.null_like((b,))
        return self.window.next_frame(hist, hist_cond, cond, null, None, extend=False)[0]

    def generated_head_losses(
        self,
        frames: Tensor,
        actions: Tensor,
        rewards: Tensor | None = None,
        dones: Tensor | None = None,
        latents: Tensor | None = None,
        index: int | None = None,
    ) -> dict[str, Tensor]:
        """The heads' losses (``reward_mse`` / ``done_bce``) on a frame the model generated:
        frame ``index`` of each clip (random in ``[1, T - 1]`` when ``None``) sampled from its
        real past (:meth:`sample_frame`), read as ``step`` reads it, against the real targets
        at ``index - 1``. Trained on both real and generated frames, the heads learn what
        survives generation (``generated_head_weight`` of the Lightning module)."""
        check_video(frames, "frames")
        b, t = frames.shape[:2]
        if t < 2:
            raise ValueError(f"generated_head_losses needs clips of >= 2 frames; got {t}")
        if index is None:
            index = int(torch.randint(1, t, ()))
        x = self._encoded(frames, latents)
        targets = {} if self.heads is None else {"rewards": rewards, "dones": dones}
        targets = targets and self.heads.trainable_targets(targets, b, t)
        if not targets:
            return {}
        new = self._head_view(self.sample_frame(frames, actions, index, x))
        return self.heads.generated_losses(x, actions, targets, index, new)
