"""An SB3 replay buffer that mixes real and imagined transitions (MBPO's two buffers).

MBPO (Janner et al., 2019) keeps the environment's transitions and the model's branched
rollouts in separate buffers and trains the actor-critic on batches drawn from both;
iVideoGPT's Meta-World MBPO draws ``real_ratio = 0.5`` of each batch from real data. This
buffer *is* the learner's ``replay_buffer``: ``add`` (called for real transitions) fills the
real part, ``add_imagined`` the imagined part, and ``sample`` — what SAC/TD3's ``train``
calls — returns ``round(real_ratio · B)`` real and the rest imagined transitions (only real
while no imagined transition exists).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

__all__ = ["MixedReplayBuffer"]


class MixedReplayBuffer(ReplayBuffer):
    """Real + imagined transitions (SB3 ``replay_buffer_class``).

    Args:
        buffer_size: capacity of the real part.
        observation_space: as SB3's ``ReplayBuffer``.
        action_space: as SB3's ``ReplayBuffer``.
        device: as SB3's ``ReplayBuffer``.
        n_envs: as SB3's ``ReplayBuffer``.
        optimize_memory_usage: as SB3's ``ReplayBuffer``.
        handle_timeout_termination: as SB3's ``ReplayBuffer``.
        real_ratio: fraction of each sampled batch taken from real transitions, in [0, 1].
        imagined_size: capacity of the imagined part (defaults to ``buffer_size``).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        real_ratio: float = 0.5,
        imagined_size: int | None = None,
    ) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs,
                         optimize_memory_usage, handle_timeout_termination)  # fmt: skip
        if not 0.0 <= real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1]; got {real_ratio}")
        self.real_ratio = float(real_ratio)
        self.imagined = ReplayBuffer(
            imagined_size or buffer_size,
            observation_space,
            action_space,
            device,
            n_envs=1,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.imagined_added = 0

    def add_imagined(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Add ``B`` imagined transitions (observations in the buffer's layout, actions as the
        learner stores them, i.e. scaled to [-1, 1] for ``Box`` spaces)."""
        b = len(obs)
        if not (len(next_obs) == len(actions) == len(rewards) == len(terminated) == b):
            raise ValueError("obs, next_obs, actions, rewards and terminated need the same length")
        trunc = np.zeros(b, bool) if truncated is None else np.asarray(truncated, bool)
        for i in range(b):
            info: dict[str, Any] = {"TimeLimit.truncated": bool(trunc[i])}
            self.imagined.add(obs[i : i + 1], next_obs[i : i + 1], actions[i : i + 1],
                              np.asarray(rewards[i : i + 1], np.float32),
                              np.asarray(terminated[i : i + 1] | trunc[i : i + 1], np.float32),
                              [info])  # fmt: skip
        self.imagined_added += b

    def sample(self, batch_size: int, env=None) -> ReplayBufferSamples:
        n_real = batch_size if self.imagined.size() == 0 else round(self.real_ratio * batch_size)
        if self.size() == 0:
            n_real = 0
        parts = []
        if n_real > 0:
            parts.append(super().sample(n_real, env))
        if batch_size - n_real > 0:
            parts.append(self.imagined.sample(batch_size - n_real, env))
        if len(parts) == 1:
            return parts[0]
        return ReplayBufferSamples(
            *(torch.cat([getattr(p, f) for p in parts]) for f in ReplayBufferSamples._fields[:5])
        )
