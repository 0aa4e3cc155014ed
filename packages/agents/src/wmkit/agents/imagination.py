"""Batched stepping of any ``WorldModel`` as a set of environments: the engine behind
:class:`~wmkit.agents.WorldModelEnv`, :class:`~wmkit.agents.WorldModelVecEnv` and MBPO's
branched rollouts.

It follows DIAMOND's ``WorldModelEnv`` (Alonso et al., 2024, ``src/envs/world_model_env.py``):
start from real context clips, step the model, read reward/termination from heads, truncate
at a horizon, and restart finished environments from fresh clips. Where we differ: DIAMOND
owns its model's state (a frame/action buffer) and can restart a subset of environments in
place; a ``WorldState`` is opaque, so when some environments finish we call
``world_model.reset`` on the whole batch, with fresh clips for the finished ones and each
running one's last ``T0`` frames (and actions) for the others. Models whose state reaches
further back than ``T0`` frames lose that older history at such a restart; models with a
Markov or ``T0``-frame window (and every model when all environments finish together) are
unaffected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from wmkit.agents.contexts import ContextSource
from wmkit.agents.spaces import actions_to_torch, frames_to_obs
from wmkit.core import WorldModel, WorldState

__all__ = ["Imagination", "RewardFn", "TerminationFn"]

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(frame [B, C, H, W], action [B, ...], next_frame [B, C, H, W]) -> reward [B]``."""
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(frame, action, next_frame) -> terminated bool [B]``."""


class Imagination:
    """``num_envs`` imagined environments stepped together by one world model.

    Args:
        world_model: any ``wmkit.core.WorldModel``.
        contexts: start clips (``ContextSource``).
        num_envs: environments stepped as one batch.
        reward_fn: reward from frames and action; ``None`` uses the model's reward head
            (``StepOutput.reward``) and fails if the model has none.
        termination_fn: termination from frames and action; ``None`` uses the model's done
            head (``StepOutput.done > 0.5``) when it has one, else episodes only truncate.
        max_episode_steps: truncation horizon (imagined steps after the context).
        device: where the model runs (defaults to the model's parameters' device, else CPU).
    """

    def __init__(
        self,
        world_model: WorldModel,
        contexts: ContextSource,
        num_envs: int = 1,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        max_episode_steps: int = 64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(world_model, WorldModel):
            raise TypeError(
                "world_model must satisfy wmkit.core.WorldModel (action_spec, reset, step, "
                f"rollout); got {type(world_model).__name__}"
            )
        if not isinstance(contexts, ContextSource):
            raise TypeError(
                "contexts must be a ContextSource (e.g. wmkit.agents.ClipContexts); got "
                f"{type(contexts).__name__}"
            )
        if int(num_envs) < 1 or int(max_episode_steps) < 1:
            raise ValueError(
                f"num_envs and max_episode_steps must be >= 1; got {num_envs}, {max_episode_steps}"
            )
        self.world_model = world_model
        self.contexts = contexts
        self.num_envs = int(num_envs)
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.max_episode_steps = int(max_episode_steps)
        if device is None:
            params = getattr(world_model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)
        self.spec = world_model.action_spec
        self.state: WorldState | None = None
        self.frame: Tensor | None = None  # [N, C, H, W], the current observation
        self.window: Tensor | None = None  # [N, T0, C, H, W], last T0 frames
        self.window_actions: Tensor | None = None  # [N, T0 - 1, ...]
        self.elapsed = np.zeros(self.num_envs, np.int64)

    # ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _seeded(self, rng: np.random.Generator) -> Iterator[None]:
        """Run model calls under a torch seed drawn from ``rng`` (without touching the
        global generator), so stochastic models are reproducible under the env's seed."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        seed = int(rng.integers(0, 2**62))
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def start(self, frames: Tensor, actions: Tensor | None, rng: np.random.Generator) -> np.ndarray:
        """Start every environment from the given clips ``[N, T0, C, H, W]`` (and actions
        ``[N, T0 - 1, ...]``); returns observations ``uint8 [N, H, W, C]``."""
        frames = frames.to(self.device)
        actions = None if actions is None else actions.to(self.device)
        with self._seeded(rng), torch.no_grad():
            self.state = self.world_model.reset(frames, actions)
        self.window, self.window_actions = frames, actions
        self.frame = frames[:, -1]
        self.elapsed[:] = 0
        return frames_to_obs(self.frame)

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Start every environment from a fresh clip; returns ``uint8 [N, H, W, C]``."""
        frames, actions = self.contexts.sample(self.num_envs, rng)
        return self.start(frames, actions, rng)

    def reset_done(self, done: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Restart the environments where ``done`` (bool ``[N]``) from fresh clips, keeping the
        others' last ``T0`` frames as their context (see the module docstring)."""
        if self.window is None:
            raise RuntimeError("call reset before reset_done")
        done = np.asarray(done, bool)
        if not done.any():
            return frames_to_obs(self.frame)  # type: ignore[arg-type]
        idx = torch.as_tensor(np.flatnonzero(done), device=self.device)
        fresh, fresh_actions = self.contexts.sample(int(done.sum()), rng)
        frames = self.window.clone()
        frames[idx] = fresh.to(self.device)
        actions = None
        if self.window_actions is not None and fresh_actions is not None:
            actions = self.window_actions.clone()
            actions[idx] = fresh_actions.to(self.device, actions.dtype)
        elapsed = self.elapsed.copy()
        self.start(frames, actions, rng)
        self.elapsed[:] = np.where(done, 0, elapsed)
        return frames_to_obs(self.frame)  # type: ignore[arg-type]

    @torch.no_grad()
    def step(
        self, actions: np.ndarray | Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per environment.

        Returns observations ``uint8 [N, H, W, C]``, rewards ``float32 [N]``, terminated and
        truncated ``bool [N]``. Finished environments are *not* restarted here.
        """
        if self.state is None or self.frame is None:
            raise RuntimeError("call reset before step")
        action = actions_to_torch(self.spec, actions, self.num_envs, self.device)
        with self._seeded(rng):
            out = self.world_model.step(self.state, action)
        nxt = out.frame  # [N, C, H, W]
        if self.reward_fn is not None:
            reward = self.reward_fn(self.frame, action, nxt)
        elif out.reward is not None:
            reward = out.reward
        else:
            raise ValueError(
                f"{type(self.world_model).__name__} predicts no reward (StepOutput.reward is "
                "None); pass reward_fn=(frame, action, next_frame) -> reward [B]"
            )
        if self.termination_fn is not None:
            terminated = self.termination_fn(self.frame, action, nxt).bool()
        elif out.done is not None:
            terminated = out.done > 0.5
        else:
            terminated = torch.zeros(self.num_envs, dtype=torch.bool)
        self.state, self.frame = out.state, nxt
        self.window = torch.cat([self.window[:, 1:], nxt[:, None]], dim=1)  # type: ignore[index]
        if self.window_actions is not None:
            self.window_actions = torch.cat([self.window_actions[:, 1:], action[:, None]], dim=1)
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        return (
            frames_to_obs(nxt),
            reward.detach().float().reshape(self.num_envs).cpu().numpy(),
            terminated.reshape(self.num_envs).cpu().numpy().astype(bool),
            truncated.copy(),
        )
