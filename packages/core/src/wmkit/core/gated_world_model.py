"""Any per-frame world model behind a learned :class:`~wmkit.core.change_gate.ChangeGate`.

``GatedWorldModel(world)`` is itself a ``WorldModel``: ``reset`` and ``step`` run ``world``'s,
then the gate serves, block by block, either the world model's frame or the frame served last
(bit-exactly; the last context frame at the first step). The world model's own state is not
touched: it goes on from the frames it generated, so a gate never changes what the world model
predicts, only what is shown; rewards and dones pass through. Train the gate with
:class:`~wmkit.core.change_gate_lit.ChangeGateModule` (``wmkit gate fit``) on the frozen world
model's rollouts.

The world model is a frozen component (``frozen_components``): saved in ``world/`` beside the
gate's weights, so a gated model is one directory. Models whose step spans several frames
(``frames_per_step > 1``, which serve frames actions behind) are refused: the gate pairs each
served frame with the action it follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wmkit.core.action_spec import ActionSpec
from wmkit.core.change_gate import ChangeGate
from wmkit.core.components import build_component
from wmkit.core.pretrained import PretrainedMixin, load_pretrained
from wmkit.core.protocols import StepOutput, WorldModel, WorldState
from wmkit.core.world_model import StepwiseRolloutMixin, check_world_model_inputs

__all__ = ["GatedState", "GatedWorldModel"]


@dataclass
class GatedState(WorldState):
    """``frames``: the frame served last ``[B, 1, C, H, W]``; ``inner``: the world model's
    state."""

    inner: WorldState | None = None


class GatedWorldModel(nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """``world`` with a learned per-patch "keep the last frame" gate on every frame it serves.

    Args:
        world: a per-frame ``WorldModel`` (frozen), the directory it was saved to, or its
            ``{"class_path", "init_args"}``.
        channels: frame channels.
        patch / width / depth: the :class:`ChangeGate`'s block size, features and layers.

    Example::

        gated = GatedWorldModel("runs/quickstart/world")
        # train: wmkit gate fit -c config.yaml (ChangeGateModule), or load a trained one:
        gated = load_pretrained("runs/quickstart/gated")
        frames = gated.rollout(context_frames, actions).frames
    """

    frozen_components = ("world",)  # saved in world/ (PretrainedMixin)

    def __init__(
        self,
        world: str | dict[str, Any] | WorldModel,
        channels: int = 3,
        patch: int = 4,
        width: int = 48,
        depth: int = 2,
    ) -> None:
        super().__init__()
        if isinstance(world, str):
            world = load_pretrained(world)  # type: ignore[assignment]
        elif isinstance(world, dict):
            world = build_component(world, nn.Module, "world")
        if not isinstance(world, WorldModel):
            raise TypeError(f"world must be a WorldModel; got {type(world).__name__}")
        k = getattr(world, "frames_per_step", 1)
        if k != 1:
            raise ValueError(
                f"the change gate pairs each frame with the action it follows; this world model "
                f"serves frames_per_step={k} frames per latent step, lagging its actions"
            )
        if isinstance(world, nn.Module):
            world.eval().requires_grad_(False)
        # frozen and saved in its own directory: not a submodule
        object.__setattr__(self, "_world", world)
        self.gate = ChangeGate(world.action_spec.feature_dim, channels, patch, width, depth)

    @property
    def world(self) -> WorldModel:
        """The gated world model (frozen)."""
        return self._world

    @property
    def action_spec(self) -> ActionSpec:
        return self._world.action_spec

    def _apply(self, fn: Any, recurse: bool = True) -> GatedWorldModel:
        super()._apply(fn, recurse)
        if isinstance(self._world, nn.Module):  # frozen, not a submodule: move it too
            self._world._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> GatedWorldModel:
        super().train(mode)
        if isinstance(self._world, nn.Module):
            self._world.eval()  # frozen: its dropout and norms stay in evaluation mode
        return self

    def reset(
        self, context_frames: Tensor, context_actions: Tensor | None = None, **options: Any
    ) -> GatedState:
        """``world.reset``; the last context frame is the first frame the gate keeps from."""
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        inner = self._world.reset(context_frames, context_actions, **options)  # type: ignore[call-arg]
        return GatedState(t=inner.t, frames=context_frames[:, -1:], inner=inner)

    @torch.no_grad()
    def step(self, state: GatedState, action: Tensor) -> StepOutput:
        """``world.step``, then the gate's choice per block between its frame and the frame
        served last."""
        if not isinstance(state, GatedState) or state.inner is None:
            raise TypeError("state must come from this GatedWorldModel's reset or step")
        action = self.action_spec.validate(action, name="action", batch_dims=1)
        out = self._world.step(state.inner, action)
        if out.lag:
            raise ValueError(f"the world model served a frame {out.lag} actions behind")
        anchor = state.frames[:, -1]
        logits = self.gate(anchor, out.frame, self.action_spec.features(action))
        frame = self.gate.select(anchor, out.frame, logits)
        new = GatedState(t=state.t + 1, frames=frame.unsqueeze(1), inner=out.state)
        return StepOutput(frame, out.reward, new, out.done)
