"""A scripted world model (known dynamics) and a tiny real environment for play tests; the
tiny quickstart preset's Crafter recording, made once for the quickstart runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wmkit.core import ActionSpec, StepOutput, WorldState, to_float_video
from wmkit.core.testing.moving_squares import MOVES
from wmkit.core.world_model import StepwiseRolloutMixin, check_world_model_inputs

SIZE = 16
SPEC = ActionSpec.discrete(5, names=("stay", "up", "down", "left", "right"))


def render(pos: np.ndarray) -> np.ndarray:
    frame = np.full((SIZE, SIZE, 3), 16, np.uint8)
    y, x = int(pos[0]), int(pos[1])
    frame[y : y + 4, x : x + 4] = (240, 200, 60)
    return frame


class ScriptedSquareWorld(StepwiseRolloutMixin):
    """Finds the square in the last context frame and moves it by the actions, exactly."""

    action_spec = SPEC

    def reset(self, context_frames, context_actions=None):
        check_world_model_inputs(SPEC, context_frames, None, context_actions)
        last = context_frames[0, -1, 0]  # red channel [H, W]
        ys, xs = torch.nonzero(last > 0).T
        pos = np.array([int(ys.min()), int(xs.min())]) if len(ys) else np.zeros(2, int)
        return WorldState(
            t=context_frames.shape[1], frames=context_frames[:, -1:], extra={"pos": pos}
        )

    def step(self, state, action):
        SPEC.validate(action, name="action", batch_dims=1)
        pos = np.clip(state.extra["pos"] + MOVES[int(action[0])] * 2, 0, SIZE - 4)
        frame = to_float_video(render(pos)[None])[0]  # [1, C, H, W]
        reward = torch.tensor([float(pos[0] < SIZE / 2)])
        return StepOutput(frame, reward, WorldState(state.t + 1, frame.unsqueeze(1), {"pos": pos}))


class SquareEnv:
    """The real environment the scripted world imitates (RecordableEnv-like)."""

    action_spec = SPEC
    fps = 10.0
    max_steps = 1000

    def reset(self, seed: int) -> np.ndarray:
        self.pos = np.random.default_rng(seed).integers(0, SIZE - 4, size=2)
        return render(self.pos)

    def step(self, action):
        self.pos = np.clip(self.pos + MOVES[int(action)] * 2, 0, SIZE - 4)
        return render(self.pos), float(self.pos[0] < SIZE / 2), False


@pytest.fixture
def world():
    return ScriptedSquareWorld()


@pytest.fixture
def context():
    return lambda: to_float_video(render(np.array([6, 6]))[None])  # [1, 1, C, H, W]


@pytest.fixture
def square_env():
    return SquareEnv


@pytest.fixture(scope="session")
def tiny_crafter(tmp_path_factory) -> Path:
    """The Crafter dataset ``wmkit quickstart --tiny`` records (its ``data_dir``), recorded once
    by the quickstart's own record step: the quickstart runs given it reuse it (the step finds
    it complete) instead of each recording the same episodes again."""
    from wmkit.apps.quickstart import PRESETS, QuickstartPlan
    from wmkit.apps.quickstart.runner import _data_step, _State

    root = tmp_path_factory.mktemp("tiny_crafter")
    plan = QuickstartPlan(data_dir=root / "data").scaled(**PRESETS["tiny"])
    _data_step(plan, _State(root / "quickstart_state.json", plan), log=lambda _: None)
    return plan.dataset
