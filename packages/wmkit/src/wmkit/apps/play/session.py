"""`PlaySession`: one frame at a time from a world model or the real environment.

As in DIAMOND's play loop, the person's action goes to whichever *source* is active: the
world model (``step`` on its state) or the real simulator. Switching from the environment
to the model seeds the model with the frames just seen, so one can compare them from the
same situation; switching back resets the environment (a simulator cannot be put into the
model's imagined state). Frames are ``uint8 [H, W, 3]``; a session can be recorded to mp4.
A recording is held in memory until it stops, so it keeps at most ``max_record_seconds`` of
video: past that it takes no more frames and ``recording_full`` says so.

``timing`` keeps the recent step times and the lag of the last frame (``StepOutput.lag``: a
world model whose latent step spans ``k`` frames serves its frames ``k - 1`` actions behind;
0 for per-frame models and the environment), from which the server shows play's latency
(:mod:`wmkit.apps.play.latency`).

With a ``policy`` (a wmkit-agents ``Policy``, e.g. DIAMOND's actor-critic), the agent can
drive: while ``driver == "agent"`` the policy's action replaces the person's, and
``set_driver("person")`` hands control back (DIAMOND's play toggles the same way). Unlike
DIAMOND, whose agent's memory stops while the person plays, the policy sees every frame
whoever drives, so it takes over from the situation on screen; it is reset with each new
episode or context.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from wmkit.apps.play.latency import StepTimes
from wmkit.core import ActionSpec, WorldModel, WorldState, to_float_video, write_video

__all__ = ["Driver", "PlaySession", "Source"]


def _to_u8(frame: Tensor) -> np.ndarray:
    """``float [C, H, W]`` in [-1, 1] → ``uint8 [H, W, C]``."""
    return ((frame.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


Source = Literal["model", "env"]
Driver = Literal["person", "agent"]


class PlaySession:
    """State of one play session.

    Args:
        world: the world model (``None`` to play only the environment).
        env: a real environment with ``reset(seed) -> frame``, ``step(action) -> (frame,
            reward, done)`` and ``action_spec`` (e.g. ``wmkit.core.data.envs.make_env``).
        context: ``() -> float [1, T0, C, H, W]`` giving the world model's starting context
            when there is no environment (e.g. a held-out clip of a dataset).
        context_frames: how many recent frames seed the model after a switch from the env.
        seed: first environment seed (incremented at every reset).
        record_dir: where recordings go.
        fps: frame rate written into recordings.
        device: where the world model runs.
        max_record_seconds: the longest recording, in seconds of video at ``fps`` (its
            frames are held in memory until the recording stops).
        policy: an agent that can drive: ``reset()`` and ``policy(frames uint8 [1, H, W, C])
            -> actions [1, *action_shape]`` (wmkit-agents' ``Policy``).
        driver: who drives first (default: the agent when there is a policy).
    """

    def __init__(
        self,
        world: WorldModel | None = None,
        env: Any | None = None,
        context: Callable[[], Tensor] | None = None,
        context_frames: int = 1,
        seed: int = 0,
        record_dir: str | Path = "recordings",
        fps: float = 10.0,
        device: str | torch.device = "cpu",
        max_record_seconds: float = 600.0,
        policy: Any | None = None,
        driver: Driver | None = None,
    ) -> None:
        if not max_record_seconds > 0:
            raise ValueError(f"max_record_seconds must be > 0; got {max_record_seconds}")
        if world is None and env is None:
            raise ValueError("PlaySession needs a world model, an environment, or both")
        if world is not None and env is None and context is None:
            raise ValueError("a world model without an environment needs a context source")
        if world is not None and env is not None:
            world.action_spec.check_compatible(env.action_spec, "environment action spec")
        self.world, self.env, self.context = world, env, context
        self.context_frames = max(1, int(context_frames))
        self.seed, self.fps, self.device = seed, fps, torch.device(device)
        self.max_record_seconds = float(max_record_seconds)
        self.record_dir = Path(record_dir)
        self.source: Source = "model" if world is not None else "env"
        self.history: deque[np.ndarray] = deque(maxlen=self.context_frames)
        self.state: WorldState | None = None
        self.t = 0
        self.last_reward: float | None = None
        self.done = False
        self.recording: list[np.ndarray] | None = None
        self.frame: np.ndarray | None = None
        self.timing = StepTimes()
        if policy is not None and not (
            callable(policy) and callable(getattr(policy, "reset", None))
        ):
            raise TypeError(
                f"policy must have reset() and be callable on frames; got {type(policy).__name__}"
            )
        self.policy = policy
        self.driver: Driver = "person"
        self.set_driver(driver or ("agent" if policy is not None else "person"))

    @property
    def action_spec(self) -> ActionSpec:
        return self.world.action_spec if self.world is not None else self.env.action_spec

    @property
    def frames_per_step(self) -> int:
        """Frames per world-model call that generates (``k`` of a latent-step model, else 1)."""
        return int(getattr(self.world, "frames_per_step", 1))

    @property
    def max_record_frames(self) -> int:
        """How many frames a recording keeps: ``max_record_seconds`` at ``fps``."""
        return max(1, round(self.max_record_seconds * self.fps))

    @property
    def recording_full(self) -> bool:
        """Whether the recording under way holds ``max_record_frames`` and takes no more."""
        return self.recording is not None and len(self.recording) >= self.max_record_frames

    @property
    def drivers(self) -> list[Driver]:
        return ["person", "agent"] if self.policy is not None else ["person"]

    def set_driver(self, driver: Driver) -> None:
        """Hand control to the person or to the agent (the policy)."""
        if driver not in self.drivers:
            raise ValueError(f"driver must be one of {self.drivers}; got {driver!r}")
        self.driver = driver

    def _policy_action(self, action: Tensor) -> Tensor:
        """The policy sees the frame on screen; its action replaces ``action`` when it drives."""
        if self.policy is None or self.frame is None:
            return action
        chosen = np.asarray(self.policy(self.frame[None]))
        if self.driver == "person":
            return action
        if chosen.shape[:1] != (1,):
            raise ValueError(f"the policy must return [1, *action_shape]; got shape {chosen.shape}")
        return torch.as_tensor(chosen[0])

    def _reset_policy(self) -> None:
        if self.policy is not None:
            self.policy.reset()

    @property
    def sources(self) -> list[Source]:
        return [s for s, obj in (("model", self.world), ("env", self.env)) if obj is not None]

    # ---------------------------------------------------------------------------- frames
    def _show(self, frame: np.ndarray) -> np.ndarray:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        self.frame = frame
        self.history.append(frame)
        if self.recording is not None and not self.recording_full:
            self.recording.append(frame)
        return frame

    @torch.no_grad()
    def _reset_model(self, context: Tensor) -> np.ndarray:
        assert self.world is not None
        self.state = self.world.reset(context.to(self.device))
        return _to_u8(context[0, -1])

    def _context_from_history(self) -> Tensor:
        frames = list(self.history)
        while len(frames) < self.context_frames:
            frames.insert(0, frames[0])
        return to_float_video(np.stack(frames))  # [1, T0, C, H, W]

    def reset(self) -> np.ndarray:
        """Start over: a new environment episode (next seed) or a new model context."""
        self.t, self.last_reward, self.done = 0, None, False
        self.timing.clear()
        self._reset_policy()
        self.history.clear()
        if self.env is not None:
            frame = self.env.reset(self.seed)
            self.seed += 1
            if self.source == "env":
                return self._show(frame)
            self.history.append(np.asarray(frame, np.uint8))
            return self._show(self._reset_model(self._context_from_history()))
        assert self.context is not None
        context = self.context()
        for f in context[0]:
            self.history.append(_to_u8(f))
        return self._show(self._reset_model(context))

    @torch.no_grad()
    def step(self, action: Tensor) -> np.ndarray:
        """Apply one action (``[*action_shape]``) to the active source; returns the frame.
        While the agent drives, the policy's action is applied instead."""
        if self.frame is None:
            self.reset()
        action = self._policy_action(action)
        self.action_spec.validate(action.unsqueeze(0), name="action", batch_dims=1)
        start = time.perf_counter()
        if self.source == "env":
            native: Any = action.numpy()
            if self.action_spec.kind == "discrete":
                native = int(native)
            frame, reward, done = self.env.step(native)
            self.timing.record(time.perf_counter() - start, lag=0)
            self.last_reward, self.done = float(reward), bool(done)
            self.t += 1
            out = self._show(frame)
            if done or getattr(self.env, "truncated", False):  # the next step starts a new episode
                self.reset()
            return out
        assert self.world is not None and self.state is not None
        result = self.world.step(self.state, action.unsqueeze(0).to(self.device))
        frame = _to_u8(result.frame[0])  # on the CPU: the step's time includes the device's
        self.timing.record(time.perf_counter() - start, lag=result.lag)
        self.state = result.state
        self.last_reward = None if result.reward is None else float(result.reward[0])
        # a predicted termination is shown, not acted on: play goes on in the imagined world
        self.done = result.done is not None and bool(result.done[0] > 0.5)
        self.t += 1
        return self._show(frame)

    def set_source(self, source: Source) -> np.ndarray:
        """Switch between the world model and the environment (see the module docstring)."""
        if source not in self.sources:
            raise ValueError(f"source must be one of {self.sources}; got {source!r}")
        if source == self.source and self.frame is not None:
            return self.frame
        previous, self.source = self.source, source
        if source == "model" and previous == "env" and self.history:
            self.timing.clear()
            self._reset_policy()
            return self._show(self._reset_model(self._context_from_history()))
        return self.reset()

    # ------------------------------------------------------------------------- recording
    def start_recording(self) -> None:
        self.recording = [] if self.frame is None else [self.frame]

    def stop_recording(self) -> Path | None:
        """Write the recorded frames to an mp4 under ``record_dir``; returns its path."""
        frames, self.recording = self.recording, None
        if not frames:
            return None
        name = time.strftime("play-%Y%m%d-%H%M%S") + f"-{time.monotonic_ns() % 10**6:06d}.mp4"
        return write_video(self.record_dir / name, np.stack(frames), fps=self.fps)
